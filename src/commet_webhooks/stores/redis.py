"""Redis idempotency store: exactly-once handling across processes and machines.

One Redis key per event key. A claim is a single atomic ``SET key "L:<owner>" NX PX
lease``: it succeeds only when the key is absent, and Redis deletes the key when the
lease runs out, so a crashed worker's claim frees itself and the next delivery takes
it over. Completing and releasing run as Lua scripts that first check the owner, so
a worker whose lease was taken over can no longer touch the key. A done key holds
``"D"`` and expires after ``retention_seconds``.

Requires ``redis`` (``pip install commet-webhooks[redis]``). The synchronous methods
use ``redis.Redis``; the async methods use ``redis.asyncio.Redis`` (one client per
event loop), so ``Webhooks.handle`` never blocks its loop on Redis.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NoReturn
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

try:
    import redis
    import redis.asyncio
    import redis.asyncio.retry
    import redis.backoff
    import redis.retry
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.stores.redis", "redis", exc) from exc

from ._base import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_RETENTION_SECONDS,
    Claim,
    IdempotencyStore,
    unavailable,
)

__all__ = ["DEFAULT_PREFIX", "RedisStore"]

logger = logging.getLogger("commet_webhooks.stores.redis")

DEFAULT_PREFIX = "commet_webhooks:key:"
_DONE = (b"D", "D")  # bytes, or str for a client made with decode_responses=True
_LEASE = "L:"  # + owner token
# A key that vanishes between SET NX and GET (released, expired) is retried this often.
_ATTEMPTS = 3

# KEYS[1] = key, ARGV[1] = the owner's lease value, ARGV[2] = retention in ms.
_COMPLETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], 'D', 'PX', ARGV[2])
  return 1
end
return 0
"""
# KEYS[1] = key, ARGV[1] = the owner's lease value.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _seen(value: object) -> Claim | None:
    """What a key's current value means to a claim that could not take it."""
    if value is None:
        return None  # gone meanwhile: try to take it again
    return Claim.DONE if value in _DONE else Claim.BUSY


def _passwords(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if k == "password" and v]
    return sorted({*found, *(unquote(p) for p in found)}, key=len, reverse=True)


def _redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if "password=" in parts.query:
        query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return parts.geturl()


class RedisStore(IdempotencyStore):
    """Keys in Redis under ``prefix``, shared by every worker on every machine.

    ``url`` is a redis-py URL (``redis://[:password@]host:6379/0``, ``rediss://`` for
    TLS, ``unix:///path.sock``). ``timeout`` bounds connecting, every command and the
    wait for one of the ``max_connections`` connections (sync, and per event loop for
    async), so an unreachable Redis answers 503 within about that time instead of
    hanging the request. Keep ``lease_seconds`` above your slowest handler run.
    """

    def __init__(
        self,
        url: str,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 3.0,
        max_connections: int = 10,
    ) -> None:
        super().__init__(lease_seconds=lease_seconds, retention_seconds=retention_seconds)
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if not (isinstance(max_connections, int) and max_connections > 0):
            raise ValueError("max_connections must be a positive integer")
        self._url = url  # may hold a password: never shown
        self.prefix = prefix
        self.timeout = float(timeout)
        self.max_connections = max_connections
        self._lease_ms = max(1, round(self.lease_seconds * 1000))
        self._retention_ms = max(1, round(self.retention_seconds * 1000))
        self._safe_url = _redact_url(url)
        self._secrets = _passwords(url)
        # Callers beyond max_connections wait (up to timeout) for a free connection.
        # One immediate retry replaces a pooled connection the server has dropped;
        # more (with backoff) would only delay the 503 during an outage.
        self._client = redis.Redis(
            connection_pool=redis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=self.timeout,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=redis.retry.Retry(redis.backoff.NoBackoff(), 1),
            )
        )
        self._complete = self._client.register_script(_COMPLETE)
        self._release = self._client.register_script(_RELEASE)
        # redis.asyncio connections belong to the loop that opened them.
        self._async: dict[asyncio.AbstractEventLoop, _AsyncClient] = {}

    def __repr__(self) -> str:
        return (
            f"RedisStore({self._safe_url!r}, prefix={self.prefix!r}, "
            f"lease_seconds={self.lease_seconds:g}, retention_seconds={self.retention_seconds:g})"
        )

    # ------------------------------------------------------------ sync

    def claim(self, key: str, owner: str) -> Claim:
        name = self.prefix + key
        try:
            for _ in range(_ATTEMPTS):
                if self._client.set(name, _LEASE + owner, nx=True, px=self._lease_ms):
                    return Claim.CLAIMED
                seen = _seen(self._client.get(name))
                if seen is not None:
                    return seen
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)
        return Claim.BUSY

    def complete(self, key: str, owner: str) -> bool:
        args: list[str | int] = [_LEASE + owner, self._retention_ms]
        try:
            return bool(self._complete(keys=[self.prefix + key], args=args))
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)

    def release(self, key: str, owner: str) -> bool:
        try:
            return bool(self._release(keys=[self.prefix + key], args=[_LEASE + owner]))
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)

    def close(self) -> None:
        """Close the synchronous client's connections (async ones: :meth:`aclose`)."""
        self._client.close()
        self._client.connection_pool.disconnect()

    # ------------------------------------------------------------ async

    async def aclaim(self, key: str, owner: str) -> Claim:
        client = self._async_client()
        name = self.prefix + key
        try:
            for _ in range(_ATTEMPTS):
                if await client.redis.set(name, _LEASE + owner, nx=True, px=self._lease_ms):
                    return Claim.CLAIMED
                seen = _seen(await client.redis.get(name))
                if seen is not None:
                    return seen
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)
        return Claim.BUSY

    async def acomplete(self, key: str, owner: str) -> bool:
        client = self._async_client()
        args: list[str | int] = [_LEASE + owner, self._retention_ms]
        try:
            return bool(await client.complete(keys=[self.prefix + key], args=args))
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)

    async def arelease(self, key: str, owner: str) -> bool:
        client = self._async_client()
        try:
            return bool(await client.release(keys=[self.prefix + key], args=[_LEASE + owner]))
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)

    async def aclose(self) -> None:
        """Close the running loop's async client and the synchronous client."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.redis.aclose(close_connection_pool=True)
        self.close()

    # ------------------------------------------------------------ internals

    def _async_client(self) -> _AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            for stale in [other for other in list(self._async) if other.is_closed()]:
                self._async.pop(stale, None)
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self._url,
                max_connections=self.max_connections,
                timeout=self.timeout,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 1),
            )
            client = self._async[loop] = _AsyncClient(redis.asyncio.Redis(connection_pool=pool))
        return client

    def _unavailable(self, exc: BaseException) -> NoReturn:
        raise unavailable(
            f"Redis idempotency store at {self._safe_url}", exc, self._secrets
        ) from exc


class _AsyncClient:
    """A ``redis.asyncio.Redis`` and its registered scripts, for one event loop."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.redis = client
        self.complete: Any = client.register_script(_COMPLETE)
        self.release: Any = client.register_script(_RELEASE)
