from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import PrincipalDep
from campaigns.messaging.segments import (
    MAX_BODY_CHARACTERS,
    estimate_cost,
    measure,
    within_twilio_limit,
)

router = APIRouter(prefix="/v1/messages", tags=["messages"])


class SegmentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=10_000)
    price_per_segment: Decimal | None = Field(default=None, ge=0, le=10, max_digits=10)
    recipients: int = Field(default=1, ge=0, le=10_000_000)


class SegmentsOut(BaseModel):
    encoding: str
    characters: int
    units: int = Field(description="GSM-7 septets or UCS-2 code units")
    segments: int
    ucs2_characters: list[str] = Field(description="the characters that force UCS-2")
    within_limit: bool = Field(description=f"at most {MAX_BODY_CHARACTERS} characters")
    estimated_cost: Decimal | None


@router.post("/segments")
def segments(body: SegmentsIn, principal: PrincipalDep) -> SegmentsOut:
    """How an SMS will be split and billed: GSM-7 (160/153) or UCS-2 (70/67) segments."""
    length = measure(body.text)
    cost = (
        estimate_cost(
            body.text, price_per_segment=body.price_per_segment, recipients=body.recipients
        )
        if body.price_per_segment is not None
        else None
    )
    return SegmentsOut(
        encoding=length.encoding,
        characters=length.characters,
        units=length.units,
        segments=length.segments,
        ucs2_characters=list(length.ucs2_characters),
        within_limit=within_twilio_limit(body.text),
        estimated_cost=cost,
    )
