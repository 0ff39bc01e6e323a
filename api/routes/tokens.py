from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import PrincipalDep, SessionDep
from campaigns.organizations.models import ApiToken, Role
from campaigns.organizations.service import get_user, issue_token, revoke_token

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


class TokenOut(BaseModel):
    id: int
    user_id: int
    name: str
    prefix: str = Field(description="The first characters, to recognise a token; never the secret")
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @classmethod
    def of(cls, t: ApiToken) -> TokenOut:
        return cls(
            id=t.id,
            user_id=t.user_id,
            name=t.name,
            prefix=t.prefix,
            created_at=t.created_at,
            expires_at=t.expires_at,
            revoked_at=t.revoked_at,
            last_used_at=t.last_used_at,
        )


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=100)
    days: int = Field(default=90, ge=1, le=3650)
    user_id: int | None = Field(
        default=None, description="Admins may issue a token for another user"
    )


class TokenCreated(TokenOut):
    token: str = Field(description="The secret, shown this once")


@router.get("")
def list_tokens(session: SessionDep, principal: PrincipalDep) -> list[TokenOut]:
    """Your tokens; an admin sees every token of the organization."""
    stmt = select(ApiToken).order_by(ApiToken.id)
    if principal.role != Role.admin:
        stmt = stmt.where(ApiToken.user_id == principal.user_id)
    return [TokenOut.of(t) for t in session.scalars(stmt)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create(body: TokenCreate, session: SessionDep, principal: PrincipalDep) -> TokenCreated:
    user_id = body.user_id or principal.user_id
    if user_id != principal.user_id:
        principal.require(Role.admin)
    token, secret = issue_token(
        session, user=get_user(session, user_id), name=body.name, days=body.days
    )
    return TokenCreated(**TokenOut.of(token).model_dump(), token=secret)


@router.delete("/{token_id}")
def revoke(token_id: int, session: SessionDep, principal: PrincipalDep) -> TokenOut:
    """Revoke at once; later requests with it get 401 'token revoked'."""
    return TokenOut.of(revoke_token(session, principal=principal, token_id=token_id))
