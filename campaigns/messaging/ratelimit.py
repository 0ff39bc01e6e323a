"""A token bucket per sender in Redis, shared by every worker process.

Reservation style: each call takes one token even if the bucket is empty and returns how long to
wait before using it, so N workers together send at exactly the configured rate, and a burst
never goes above ``burst`` messages.  The clock is Redis's own (``TIME``), so workers on
machines with skewed clocks agree.
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


class RateLimiter:
    def __init__(self, client: redis.Redis[bytes], *, prefix: str = "faro:rate") -> None:
        self._client = client
        self._prefix = prefix
        self._script: Any = client.register_script(_SCRIPT)

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
