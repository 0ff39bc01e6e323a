"""One call of ``send_batch`` from a test: to the fake Twilio over HTTP, or to the simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from campaigns.crypto import AddressCipher
from campaigns.messaging.dispatch import RECHECK_AFTER, DispatchReport, send_batch
from campaigns.messaging.ratelimit import RateLimiter
from campaigns.messaging.twilio_gateway import Gateway, SimulatorGateway, TwilioGateway
from tests.factories import TWILIO_SID, TWILIO_TOKEN
from tests.fakes.twilio import FakeTwilio


def send_now(
    factory: sessionmaker[Session],
    cipher: AddressCipher,
    ids: Sequence[int],
    *,
    now: dt.datetime,
    fake: FakeTwilio | None = None,
    limiter: RateLimiter | None = None,
    rate_while_chatting: float = 0.0,
    recheck_after: float = RECHECK_AFTER,
    alongside: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> DispatchReport:
    """Send ``ids`` as a worker would: through the real ``twilio`` client to ``fake``, or with
    no ``fake`` to the simulator.  ``alongside`` runs on the same event loop meanwhile (a
    manager's pause while the batch waits for its rate limit)."""

    async def run() -> DispatchReport:
        gateway: Gateway = SimulatorGateway()
        if fake is not None:
            gateway = TwilioGateway(
                account_sid=TWILIO_SID,
                auth_token=TWILIO_TOKEN,
                api_url=fake.base_url,
                timeout=2.0,
            )
        meanwhile: asyncio.Task[None] | None = None
        if alongside is not None:
            meanwhile = asyncio.create_task(alongside())
        try:
            return await send_batch(
                factory=factory,
                gateway=gateway,
                simulator=SimulatorGateway(),
                limiter=limiter,
                cipher=cipher,
                public_url="https://faro.test",
                message_ids=list(ids),
                now=now,
                rate_while_chatting=rate_while_chatting,
                recheck_after=recheck_after,
            )
        finally:
            if meanwhile is not None:
                await meanwhile
            await gateway.close()

    return asyncio.run(run())
