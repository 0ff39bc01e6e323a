"""Information hubs: the in-person offices and help desks of a community (topic ``info_hubs``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.communities import Community
from campaigns.db import get_or_404, utcnow
from campaigns.errors import Conflict, InvalidInput, NotFound
from campaigns.knowledge.models import InfoHub
from campaigns.knowledge.validation import plain_text, require_org

MAX_NAME = 200
MAX_ADDRESS = 500
MAX_HOURS = 500
MAX_SERVICES = 20
MAX_SERVICE = 100


def validate_services(services: Sequence[str], *, field: str = "services") -> list[str]:
    if isinstance(services, str):
        raise InvalidInput("services must be a list of short texts", field=field)
    if len(services) > MAX_SERVICES:
        raise InvalidInput(f"services holds at most {MAX_SERVICES} items", field=field)
    result: list[str] = []
    for raw in services:
        item = plain_text(str(raw), field=field, max_length=MAX_SERVICE)
        if item not in result:
            result.append(item)
    return result


def _community(session: Session, *, organization_id: int, community_id: int) -> Community:
    # Checked by organization even on an unscoped session (seeds, CLI): a hub never points to
    # another organization's community.
    community = session.get(Community, community_id)
    if community is None or community.organization_id != organization_id:
        raise NotFound(f"community {community_id} not found", field="community_id")
    return community


def find_hub(session: Session, *, community_id: int, name: str) -> InfoHub | None:
    return session.scalar(
        select(InfoHub).where(InfoHub.community_id == community_id, InfoHub.name == name)
    )


def _check_unique(session: Session, *, community_id: int, name: str, exclude: int | None) -> None:
    found = find_hub(session, community_id=community_id, name=name)
    if found is not None and found.id != exclude:
        raise Conflict(f"this community has a hub named {name!r} already", field="name")


def create_hub(
    session: Session,
    *,
    community_id: int,
    name: str,
    address: str,
    opening_hours: str = "",
    services: Sequence[str] = (),
    is_active: bool = True,
    is_example: bool = False,
    organization_id: int | None = None,
    now: dt.datetime | None = None,
) -> InfoHub:
    org_id = require_org(session, organization_id)
    now = now or utcnow()
    community = _community(session, organization_id=org_id, community_id=community_id)
    name = plain_text(name, field="name", max_length=MAX_NAME)
    hub = InfoHub(
        organization_id=org_id,
        community_id=community.id,
        name=name,
        address=plain_text(address, field="address", max_length=MAX_ADDRESS),
        opening_hours=plain_text(
            opening_hours, field="opening_hours", max_length=MAX_HOURS, required=False
        ),
        services=validate_services(services),
        is_active=is_active,
        is_example=is_example,
        created_at=now,
        updated_at=now,
    )
    _check_unique(session, community_id=community.id, name=name, exclude=None)
    session.add(hub)
    session.flush()
    return hub


def get_hub(session: Session, hub_id: int) -> InfoHub:
    return get_or_404(session, InfoHub, hub_id, "info hub")


def update_hub(
    session: Session,
    *,
    hub_id: int,
    community_id: int | None = None,
    name: str | None = None,
    address: str | None = None,
    opening_hours: str | None = None,
    services: Sequence[str] | None = None,
    is_active: bool | None = None,
    is_example: bool | None = None,
    now: dt.datetime | None = None,
) -> InfoHub:
    """Change a hub; arguments left None keep their value."""
    hub = get_hub(session, hub_id)
    new_community = hub.community_id
    if community_id is not None:
        new_community = _community(
            session, organization_id=hub.organization_id, community_id=community_id
        ).id
    new_name = plain_text(name, field="name", max_length=MAX_NAME) if name is not None else hub.name
    if (new_community, new_name) != (hub.community_id, hub.name):
        _check_unique(session, community_id=new_community, name=new_name, exclude=hub.id)
    changes: dict[str, object] = {"community_id": new_community, "name": new_name}
    if address is not None:
        changes["address"] = plain_text(address, field="address", max_length=MAX_ADDRESS)
    if opening_hours is not None:
        changes["opening_hours"] = plain_text(
            opening_hours, field="opening_hours", max_length=MAX_HOURS, required=False
        )
    if services is not None:
        changes["services"] = validate_services(services)
    if is_active is not None:
        changes["is_active"] = is_active
    if is_example is not None:
        changes["is_example"] = is_example
    changes = {k: v for k, v in changes.items() if getattr(hub, k) != v}
    if changes:
        for key, value in changes.items():
            setattr(hub, key, value)
        hub.updated_at = now or utcnow()
        session.flush()
    return hub


def deactivate_hub(session: Session, *, hub_id: int, now: dt.datetime | None = None) -> InfoHub:
    return update_hub(session, hub_id=hub_id, is_active=False, now=now)


def list_hubs(
    session: Session, *, community_id: int | None = None, is_active: bool | None = None
) -> list[InfoHub]:
    """The session organization's hubs in id order."""
    stmt = select(InfoHub).order_by(InfoHub.id)
    if community_id is not None:
        stmt = stmt.where(InfoHub.community_id == community_id)
    if is_active is not None:
        stmt = stmt.where(InfoHub.is_active.is_(is_active))
    return list(session.scalars(stmt))


def hubs_for(session: Session, *, organization_id: int, community_id: int) -> list[InfoHub]:
    """The active hubs of a community, by name.  Demo hubs carry ``is_example``: say so."""
    return list(
        session.scalars(
            select(InfoHub)
            .where(
                InfoHub.organization_id == organization_id,
                InfoHub.community_id == community_id,
                InfoHub.is_active.is_(True),
            )
            .order_by(InfoHub.name, InfoHub.id)
            .execution_options(populate_existing=True)
        )
    )
