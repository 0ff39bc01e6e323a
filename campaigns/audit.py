"""The audit log: who wrote what, to which object, when — recorded in one place.

A session that carries an actor (``set_actor``: every API request with a principal, every CLI
command) records an ``AuditEvent`` for each row it inserts, updates or deletes, from a
``before_flush`` hook, so no route or service can forget it.  Summaries name the changed fields;
personal data (numbers, names, bodies, secrets) is never copied, only marked as changed.
Writes done with set-based SQL (the contact import) record one summary event themselves.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, String, event, inspect
from sqlalchemy.orm import Mapped, Session, mapped_column

from campaigns.db import Base, BigId, OrgScoped, utcnow

# Never copied into an audit summary.
PERSONAL_FIELDS = frozenset(
    {
        "address_ciphertext",
        "address_hash",
        "profile_name_ciphertext",
        "body",
        "password_hash",
        "token_hash",
        "email",
    }
)
# Bookkeeping that changes on reads; not worth an audit event.
IGNORED_FIELDS = frozenset({"last_used_at", "updated_at"})


class AuditEvent(OrgScoped, Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor_user_id: Mapped[int | None] = mapped_column(BigId, default=None, index=True)
    via: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    action: Mapped[str] = mapped_column(String(60), index=True)
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str | None] = mapped_column(String(64), default=None)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    organization_id: int | None
    via: str  # "api" | "cli" | "system"
    request_id: str | None = None


def set_actor(session: Session, actor: Actor) -> None:
    session.info["actor"] = actor


def get_actor(session: Session) -> Actor | None:
    actor = session.info.get("actor")
    return actor if isinstance(actor, Actor) else None


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return "<bytes>"
    return value


def _summary(name: str, value: Any) -> Any:
    return "<personal>" if name in PERSONAL_FIELDS and value is not None else _plain(value)


def record(
    session: Session,
    *,
    action: str,
    object_type: str,
    object_id: object = None,
    organization_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Record an event explicitly (set-based writes, reads of personal data)."""
    actor = get_actor(session)
    org_id = organization_id or (actor.organization_id if actor else None)
    if org_id is None:
        return
    session.add(
        AuditEvent(
            organization_id=org_id,
            actor_user_id=actor.user_id if actor else None,
            via=actor.via if actor else "system",
            request_id=actor.request_id if actor else None,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            before=before,
            after=after,
        )
    )


def _org_of(obj: object) -> int | None:
    if isinstance(obj, OrgScoped):
        return obj.organization_id
    from campaigns.organizations.models import Organization

    if isinstance(obj, Organization):
        return obj.id
    return None


def _event_for(actor: Actor, obj: Base, kind: str) -> AuditEvent | None:
    state = inspect(obj)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        name = attr.key
        if kind == "create":
            value = getattr(obj, name)
            if value is not None and name != "id":
                after[name] = _summary(name, value)
            continue
        hist = state.attrs[name].history
        if kind == "update" and hist.has_changes() and name not in IGNORED_FIELDS:
            before[name] = _summary(name, hist.deleted[0] if hist.deleted else None)
            after[name] = _summary(name, hist.added[0] if hist.added else None)
    if kind == "update" and not after:
        return None
    org_id = _org_of(obj) or actor.organization_id
    if org_id is None:
        return None
    pk = state.identity[0] if state.identity else None
    return AuditEvent(
        organization_id=org_id,
        actor_user_id=actor.user_id,
        via=actor.via,
        request_id=actor.request_id,
        action=f"{obj.__tablename__}.{kind}",
        object_type=obj.__tablename__,
        object_id=None if pk is None else str(pk),
        before=before or None,
        after=after or None,
    )


@event.listens_for(Session, "before_flush")
def _audit_flush(session: Session, flush_context: Any, instances: Any) -> None:
    actor = get_actor(session)
    if actor is None:
        return
    events: list[AuditEvent] = []
    for kind, objs in (("update", session.dirty), ("delete", session.deleted)):
        for obj in list(objs):
            if isinstance(obj, Base) and not isinstance(obj, AuditEvent):
                ev = _event_for(actor, obj, kind)
                if ev is not None:
                    events.append(ev)
    created = [o for o in session.new if isinstance(o, Base) and not isinstance(o, AuditEvent)]
    if created:
        # Ids exist only after the flush; the events are written in after_flush_postexec.
        session.info.setdefault("audit_created", []).extend(created)
    session.add_all(events)


@event.listens_for(Session, "after_flush_postexec")
def _audit_created(session: Session, flush_context: Any) -> None:
    created = session.info.pop("audit_created", None)
    actor = get_actor(session)
    if not created or actor is None:
        return
    for obj in created:
        ev = _event_for(actor, obj, "create")
        if ev is not None:
            session.add(ev)


@event.listens_for(Session, "after_rollback")
def _audit_forget(session: Session) -> None:
    session.info.pop("audit_created", None)
