from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import AdminDep, PrincipalDep, SessionDep
from campaigns.db import get_or_404, scope_session
from campaigns.errors import PermissionDenied
from campaigns.organizations.models import Organization, Role
from campaigns.organizations.service import create_organization, create_user, issue_token
from campaigns.phones import normalize_country

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])

OrgKind = Annotated[str, Field(pattern="^(migration_authority|municipality|ngo|international)$")]


class OrganizationOut(BaseModel):
    id: int
    name: str
    kind: str
    country: str
    created_at: dt.datetime

    @classmethod
    def of(cls, org: Organization) -> OrganizationOut:
        return cls(
            id=org.id, name=org.name, kind=org.kind, country=org.country, created_at=org.created_at
        )


class OrganizationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(min_length=2, max_length=2)
    kind: OrgKind = "ngo"
    admin_email: str = Field(min_length=3, max_length=320)
    admin_name: str = Field(default="", max_length=200)


class OrganizationCreated(BaseModel):
    organization: OrganizationOut
    admin_user_id: int
    admin_token: str = Field(description="Shown once; store it now.")


class OrganizationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: OrgKind | None = None
    country: str | None = Field(default=None, min_length=2, max_length=2)


@router.get("")
def list_organizations(session: SessionDep, principal: PrincipalDep) -> list[OrganizationOut]:
    """The caller's own organization (a user sees no other)."""
    return [OrganizationOut.of(o) for o in session.scalars(select(Organization))]


@router.post("", status_code=status.HTTP_201_CREATED)
def create(
    body: OrganizationCreate, session: SessionDep, principal: AdminDep
) -> OrganizationCreated:
    """Operators only: create an organization and its first admin, whose token is shown once.

    The operator gets no access to the new organization's data.
    """
    if not principal.is_operator:
        raise PermissionDenied("only an operator of this installation can create organizations")
    scope_session(session, None)  # the new rows belong to the new organization
    org = create_organization(session, name=body.name, country=body.country, kind=body.kind)
    admin = create_user(
        session,
        organization_id=org.id,
        email=body.admin_email,
        role=Role.admin,
        name=body.admin_name,
    )
    _, secret = issue_token(session, user=admin, name="first admin token")
    return OrganizationCreated(
        organization=OrganizationOut.of(org), admin_user_id=admin.id, admin_token=secret
    )


@router.get("/{organization_id}")
def get(organization_id: int, session: SessionDep, principal: PrincipalDep) -> OrganizationOut:
    return OrganizationOut.of(get_or_404(session, Organization, organization_id, "organization"))


@router.patch("/{organization_id}")
def update(
    organization_id: int, body: OrganizationUpdate, session: SessionDep, principal: AdminDep
) -> OrganizationOut:
    org = get_or_404(session, Organization, organization_id, "organization")
    if body.name is not None:
        org.name = body.name.strip()
    if body.kind is not None:
        org.kind = body.kind
    if body.country is not None:
        org.country = normalize_country(body.country)
    session.flush()
    return OrganizationOut.of(org)
