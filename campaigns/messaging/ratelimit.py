"""A token bucket per sender in Redis, shared by every worker process; and the signal that
makes campaigns yield to conversations.

Reservation style: each call takes one token even if the bucket is empty and returns how long to
wait before using it, so N workers together send at exactly the configured rate, and a burst
never goes above ``burst`` messages.  The clock is Redis's own (``TIME``), so workers on
machines with skewed clocks agree.

Campaigns yield to conversations: while the assistant is answering someone (``mark_chatting``,
from each conversation task), campaign sends also share one bucket, ``WHILE_CHATTING``, at
``FARO_CAMPAIGN_RATE_WHILE_CHATTING``.  A campaign at full speed takes CPU, database and API
time from the replies of people who wrote in; yielding keeps their answers fast, and the
campaign takes the full speed back ten seconds after the last question.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis

_SCRIPT = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + (now - ts) * rate)
tokens = tokens - 1
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


# How long one question keeps campaigns yielding: a conversation is several questions a few
# seconds apart, and one reply takes well under a second when the machines are not busy.
CHATTING_SECONDS = 10.0
WHILE_CHATTING = "campaigns:while-chatting"  # the bucket campaign sends share meanwhile


class RateLimiter:
    def __init__(self, client: redis.Redis[bytes], *, prefix: str = "faro:rate") -> None:
        self._client = client
        self._prefix = prefix
        self._script: Any = client.register_script(_SCRIPT)

    def mark_chatting(self, seconds: float = CHATTING_SECONDS) -> None:
        """The assistant is answering someone: campaigns yield for ``seconds`` from now."""
        self._client.set(f"{self._prefix}:chatting", b"1", px=max(1, int(seconds * 1000)))

    def chatting(self) -> bool:
        return bool(self._client.exists(f"{self._prefix}:chatting"))

    def reserve(self, name: str, *, rate: float, burst: float | None = None) -> float:
        """Take a token for ``name``; the seconds to wait before using it."""
        if rate <= 0:
            return 0.0
        result = self._script(
            keys=[f"{self._prefix}:{name}"], args=[rate, burst or max(1.0, rate / 10)]
        )
        return float(result)

    async def acquire(self, name: str, *, rate: float, burst: float | None = None) -> None:
        wait = await asyncio.to_thread(self.reserve, name, rate=rate, burst=burst)
        if wait > 0:
            await asyncio.sleep(wait)
