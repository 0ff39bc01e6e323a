from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import AdminDep, SessionDep
from campaigns.audit import AuditEvent
from campaigns.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/audit-events", tags=["audit"])


class AuditEventOut(BaseModel):
    id: int
    actor_user_id: int | None
    via: str
    request_id: str | None
    action: str
    object_type: str
    object_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: dt.datetime


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


@router.get("")
def list_events(
    session: SessionDep,
    principal: AdminDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=60)] = None,
    object_type: Annotated[str | None, Query(max_length=60)] = None,
    object_id: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditPage:
    """Newest first."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if cursor:
        stmt = stmt.where(AuditEvent.id < decode_cursor(cursor))
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if object_type:
        stmt = stmt.where(AuditEvent.object_type == object_type)
    if object_id:
        stmt = stmt.where(AuditEvent.object_id == object_id)
    rows = list(session.scalars(stmt))
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return AuditPage(
        items=[AuditEventOut.model_validate(r, from_attributes=True) for r in rows[:limit]],
        next_cursor=nxt,
    )
