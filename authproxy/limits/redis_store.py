"""The Redis bucket store: one budget for every worker and replica that points at the same Redis.

One Lua script reads, refills, checks and takes from all of a request's buckets atomically, on Redis's own
clock (`TIME`), so processes with skewed clocks agree. redis-py runs it with EVALSHA and loads it again
when Redis answers NOSCRIPT (after a restart). Keys are `authproxy:rl:{CALLER}:LIMIT`: the hash tag keeps
one caller's buckets in one slot. Each bucket expires once it would be full again, so Redis holds only
callers active within one refill time. Every call is bounded by the configured timeout; any failure is a
RateLimitBackendError and the caller applies `on_error`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.driver_info import DriverInfo
from redis.exceptions import RedisError

from authproxy.config.limits_model import Rate
from authproxy.errors import RateLimitBackendError
from authproxy.limits.bucket import Taken

__all__ = ["RedisBuckets"]

_MAX_CONNECTIONS = 64  # per process; a request holds one for one round trip

# KEYS: the buckets. ARGV: per bucket, its refill rate (tokens/s) and burst.
# Returns {limiting index (0: allowed), seconds to wait (text), whole tokens left per bucket...}.
_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local levels, wait, limiting = {}, 0, 0
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local held = redis.call('HMGET', key, 'tokens', 'stamp')
  local tokens = burst
  if held[1] then
    local elapsed = math.max(0, now - tonumber(held[2]))
    tokens = math.min(burst, tonumber(held[1]) + elapsed * rate)
  end
  levels[i] = tokens
  if tokens < 1 and (1 - tokens) / rate > wait then
    wait, limiting = (1 - tokens) / rate, i
  end
end
local out = {limiting, tostring(wait)}
for i, key in ipairs(KEYS) do
  local tokens = levels[i]
  if limiting == 0 then
    local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
    tokens = tokens - 1
    redis.call('HSET', key, 'tokens', tostring(tokens), 'stamp', tostring(now))
    redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
  end
  out[#out + 1] = math.floor(tokens)
end
return out
"""


_REDIS_VERSION: str = getattr(redis, "__version__", "unknown")


class RedisBuckets:
    """A pooled asyncio client, made on first use: `authproxy explain` and `check` never connect."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._client: aioredis.Redis | None = None
        self._script: AsyncScript | None = None

    def _take_script(self) -> AsyncScript:
        if self._script is None:
            self._client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                max_connections=_MAX_CONNECTIONS,
                # One quick retry on a fresh connection: after a Redis restart every pooled connection
                # is dead, and the first use of each finds out.
                retry=Retry(NoBackoff(), 1),
                # Named here: left unset, every new connection looks the version up in the installed
                # package metadata, a file-system read on the event loop.
                driver_info=DriverInfo(name="redis-py", lib_version=_REDIS_VERSION),
            )
            self._script = self._client.register_script(_TAKE)
        return self._script

    async def take(self, keys: Sequence[tuple[str, Rate]]) -> Taken:
        args: list[str | int] = []
        for _, rate in keys:
            args += [repr(rate.per_second), rate.burst]
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._take_script()(keys=[key for key, _ in keys], args=args)
        except (RedisError, OSError, TimeoutError) as error:
            raise RateLimitBackendError(type(error).__name__) from error
        try:
            limiting, wait = int(reply[0]), float(reply[1])
            remaining = tuple(int(tokens) for tokens in reply[2:])
        except (TypeError, ValueError, IndexError) as error:
            raise RateLimitBackendError("unexpected reply from the rate-limit script") from error
        return Taken(limiting == 0, wait, remaining, limiting - 1)

    async def close(self) -> None:
        client, self._client, self._script = self._client, None, None
        if client is not None:
            await client.aclose()
