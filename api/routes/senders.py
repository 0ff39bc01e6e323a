from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import AdminDep, ManagerDep, SessionDep
from campaigns.db import get_or_404
from campaigns.messaging.models import Sender
from campaigns.messaging.senders import create_sender, update_sender

router = APIRouter(prefix="/v1/senders", tags=["senders"])


class SenderOut(BaseModel):
    id: int
    channel: str
    address: str
    messaging_service_sid: str | None
    rate_per_second: float
    is_simulated: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, s: Sender) -> SenderOut:
        return cls(
            id=s.id,
            channel=s.channel.value,
            address=s.address,
            messaging_service_sid=s.messaging_service_sid,
            rate_per_second=s.rate_per_second,
            is_simulated=s.is_simulated,
            created_at=s.created_at,
        )


class SenderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str = Field(description="whatsapp or sms")
    address: str = Field(max_length=40, description="the Twilio number, E.164")
    rate_per_second: float = Field(default=10.0, gt=0, le=1000)
    messaging_service_sid: str | None = Field(default=None, max_length=34)


class SenderUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate_per_second: float | None = Field(default=None, gt=0, le=1000)


@router.get("")
def list_senders(session: SessionDep, principal: ManagerDep) -> list[SenderOut]:
    return [SenderOut.of(s) for s in session.scalars(select(Sender).order_by(Sender.id))]


@router.post("", status_code=status.HTTP_201_CREATED)
def create(body: SenderCreate, session: SessionDep, principal: AdminDep) -> SenderOut:
    return SenderOut.of(create_sender(session, **body.model_dump()))


@router.get("/{sender_id}")
def get(sender_id: int, session: SessionDep, principal: ManagerDep) -> SenderOut:
    return SenderOut.of(get_or_404(session, Sender, sender_id, "sender"))


@router.patch("/{sender_id}")
def update(
    sender_id: int, body: SenderUpdate, session: SessionDep, principal: AdminDep
) -> SenderOut:
    return SenderOut.of(
        update_sender(session, sender_id=sender_id, rate_per_second=body.rate_per_second)
    )
