"""Redis idempotency store: exactly-once handling across processes and machines.

One Redis key per event key. A claim is a single atomic ``SET key "L:<owner>" NX PX
lease``: it succeeds only when the key is absent, and Redis deletes the key when the
lease runs out, so a crashed worker's claim frees itself and the next delivery takes
it over. Completing, releasing and renewing run as Lua scripts that first check the
owner, so a worker whose lease was taken over can no longer touch the key. A done key holds
``"D"`` and expires after ``retention_seconds``.

Requires ``redis`` (``pip install commet-webhooks[redis]``). The synchronous methods
use ``redis.Redis``; the async methods use ``redis.asyncio.Redis`` (one client per
event loop), so ``Webhooks.handle`` never blocks its loop on Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
    Op,
    PerLoop,
    Step,
    SteppedStore,
    Steps,
    T,
    adrive,
    drive,
    unavailable,
)

__all__ = ["DEFAULT_PREFIX", "RedisStore"]

logger = logging.getLogger("commet_webhooks.stores.redis")

DEFAULT_PREFIX = "commet_webhooks:key:"
_DONE = (b"D", "D")  # bytes, or str for a client made with decode_responses=True
_LEASE = "L:"  # + owner token

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
# KEYS[1] = key, ARGV[1] = the owner's lease value, ARGV[2] = lease in ms. A lease that
# ran out is gone (Redis deleted the key), so only a live one is extended.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
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


class RedisStore(SteppedStore):
    """Keys in Redis under ``prefix``, shared by every worker on every machine.

    ``url`` is a redis-py URL (``redis://[:password@]host:6379/0``, ``rediss://`` for
    TLS, ``unix:///path.sock``). ``timeout`` bounds connecting, every command and the
    wait for one of the ``max_connections`` connections (sync, and per event loop for
    async), so an unreachable or frozen Redis answers 503 within about that time
    instead of hanging the request. A command that timed out is not retried; a pooled
    connection the server closed is replaced once, at once.
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
        # a timeout is not retried (it would only double the wait for the 503).
        self._pool_options: dict[str, Any] = {
            "max_connections": max_connections,
            "timeout": self.timeout,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "socket_keepalive": True,
        }
        self._client = _Client(
            redis.Redis(
                connection_pool=redis.BlockingConnectionPool.from_url(
                    url,
                    retry=redis.retry.Retry(
                        redis.backoff.NoBackoff(), 1, supported_errors=(redis.ConnectionError,)
                    ),
                    **self._pool_options,
                )
            )
        )
        # redis.asyncio connections belong to the loop that opened them.
        self._async: PerLoop[_Client] = PerLoop()

    def __repr__(self) -> str:
        return (
            f"RedisStore({self._safe_url!r}, prefix={self.prefix!r}, "
            f"lease_seconds={self.lease_seconds:g}, retention_seconds={self.retention_seconds:g})"
        )

    def close(self) -> None:
        """Close the synchronous client's connections (async ones: :meth:`aclose`)."""
        self._client.redis.close()
        self._client.redis.connection_pool.disconnect()

    async def aclose(self) -> None:
        """Close the running loop's async client and the synchronous client."""
        client = self._async.pop_current()
        if client is not None:
            await client.redis.aclose(close_connection_pool=True)
        self.close()

    # ------------------------------------------------------------ drivers

    def _run(self, make_steps: Callable[[], Steps[T]]) -> T:
        client = self._client
        try:
            return drive(make_steps(), lambda step: _result(step, self._send(client, step)))
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)

    async def _arun(self, make_steps: Callable[[], Steps[T]]) -> T:
        client = self._async_client()

        async def run(step: Step) -> Any:
            return _result(step, await self._send(client, step))

        try:
            return await adrive(make_steps(), run)
        except (redis.RedisError, OSError) as exc:
            self._unavailable(exc)

    def _send(self, client: _Client, step: Step) -> Any:
        """Start one step's command: its reply (sync) or an awaitable of it (async)."""
        op, key, owner = step
        name = self.prefix + key
        lease = _LEASE + owner
        if op is Op.TAKE:
            return client.redis.set(name, lease, nx=True, px=self._lease_ms)
        if op is Op.LOOK:
            return client.redis.get(name)
        if op is Op.FINISH:
            return client.complete(keys=[name], args=[lease, self._retention_ms])
        if op is Op.FREE:
            return client.release(keys=[name], args=[lease])
        if op is Op.EXTEND:
            return client.renew(keys=[name], args=[lease, self._lease_ms])
        raise AssertionError(f"Redis has no step {op}")  # PURGE: Redis expires keys itself

    def _async_client(self) -> _Client:
        return self._async.current(self._new_async_client)[0]

    def _new_async_client(self) -> _Client:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            self._url,
            retry=redis.asyncio.retry.Retry(
                redis.backoff.NoBackoff(), 1, supported_errors=(redis.ConnectionError,)
            ),
            **self._pool_options,
        )
        return _Client(redis.asyncio.Redis(connection_pool=pool))

    def _unavailable(self, exc: BaseException) -> NoReturn:
        raise unavailable(
            f"Redis idempotency store at {self._safe_url}", exc, self._secrets
        ) from exc


def _result(step: Step, reply: Any) -> Any:
    return _seen(reply) if step[0] is Op.LOOK else bool(reply)


class _Client:
    """A sync or async Redis client and its registered scripts."""

    def __init__(self, client: redis.Redis | redis.asyncio.Redis) -> None:
        self.redis: Any = client
        self.complete: Any = client.register_script(_COMPLETE)
        self.release: Any = client.register_script(_RELEASE)
        self.renew: Any = client.register_script(_RENEW)
