from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import AdminDep, PrincipalDep, SessionDep
from campaigns.errors import Conflict
from campaigns.organizations.models import Role, User
from campaigns.organizations.service import create_user, current_org, get_user

router = APIRouter(prefix="/v1/users", tags=["users"])


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: Role
    is_active: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            id=u.id,
            email=u.email,
            name=u.name,
            role=u.role,
            is_active=u.is_active,
            created_at=u.created_at,
        )


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    name: str = Field(default="", max_length=200)
    role: Role
    password: str | None = Field(default=None, min_length=12, max_length=200)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    role: Role | None = None
    is_active: bool | None = None


@router.get("/me")
def me(session: SessionDep, principal: PrincipalDep) -> UserOut:
    return UserOut.of(get_user(session, principal.user_id))


@router.get("")
def list_users(session: SessionDep, principal: AdminDep) -> list[UserOut]:
    return [UserOut.of(u) for u in session.scalars(select(User).order_by(User.id))]


@router.post("", status_code=status.HTTP_201_CREATED)
def create(body: UserCreate, session: SessionDep, principal: AdminDep) -> UserOut:
    user = create_user(
        session,
        organization_id=current_org(session),
        email=body.email,
        role=body.role,
        name=body.name,
        password=body.password,
    )
    return UserOut.of(user)


@router.get("/{user_id}")
def get(user_id: int, session: SessionDep, principal: AdminDep) -> UserOut:
    return UserOut.of(get_user(session, user_id))


@router.patch("/{user_id}")
def update(user_id: int, body: UserUpdate, session: SessionDep, principal: AdminDep) -> UserOut:
    user = get_user(session, user_id)
    if user.id == principal.user_id and (
        (body.role is not None and body.role != Role.admin) or body.is_active is False
    ):
        raise Conflict("you cannot demote or deactivate yourself; ask another admin", field="role")
    if body.name is not None:
        user.name = body.name
    if body.role is not None:
        user.role = body.role
    if body.is_active is not None:
        user.is_active = body.is_active
    session.flush()
    return UserOut.of(user)
