"""The claim / complete / release protocol every idempotency store implements.

A key (the event id, else the SHA-256 of the body) is *claimed* with an owner token
and a lease before handlers run, *completed* after they succeed (kept as done for
``retention_seconds``) and *released* when they fail so Commet's retry runs them
again. A lease that expires (a crashed worker) can be claimed by the next delivery.
Only the owner of a claim can complete or release it.

Stores implement the synchronous methods; the async variants default to running
them in a worker thread so the event loop never blocks on store I/O. Network stores
override the async variants with native async clients.
"""

from __future__ import annotations

import asyncio
import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable

from ..errors import StoreUnavailableError

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_RETENTION_SECONDS",
    "Claim",
    "IdempotencyStore",
    "unavailable",
]

#: A claim outlives any sane handler run; a crashed worker's claim frees itself after it.
DEFAULT_LEASE_SECONDS = 60.0
#: Commet retries for about 13 hours; keep done keys for a week.
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600.0


class Claim(str, enum.Enum):
    """What :meth:`IdempotencyStore.claim` found."""

    CLAIMED = "claimed"  # the caller now owns the key and must complete or release it
    DONE = "done"  # handled before: answer 200 duplicate
    BUSY = "busy"  # a live lease is held elsewhere: answer 409 so Commet retries


class IdempotencyStore(ABC):
    """Base class of the stores accepted by ``Webhooks(idempotency_store=...)``."""

    def __init__(
        self,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        if not lease_seconds > 0:
            raise ValueError("lease_seconds must be positive")
        if not retention_seconds > 0:
            raise ValueError("retention_seconds must be positive")
        self.lease_seconds = float(lease_seconds)
        self.retention_seconds = float(retention_seconds)

    @abstractmethod
    def claim(self, key: str, owner: str) -> Claim:
        """Take ``key`` for ``owner`` with a lease, unless done or leased elsewhere."""

    @abstractmethod
    def complete(self, key: str, owner: str) -> bool:
        """Mark ``key`` done; False when ``owner`` no longer holds the claim."""

    @abstractmethod
    def release(self, key: str, owner: str) -> bool:
        """Drop ``owner``'s claim so a retry can take it; False when not the owner."""

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections; the default has none."""

    async def aclaim(self, key: str, owner: str) -> Claim:
        return await asyncio.to_thread(self.claim, key, owner)

    async def acomplete(self, key: str, owner: str) -> bool:
        return await asyncio.to_thread(self.complete, key, owner)

    async def arelease(self, key: str, owner: str) -> bool:
        return await asyncio.to_thread(self.release, key, owner)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lease_seconds={self.lease_seconds:g})"


def unavailable(
    store: str, exc: BaseException, secrets: Iterable[str] = ()
) -> StoreUnavailableError:
    """The error for a store that failed with ``exc``; ``secrets`` never reach the message.

    Raise it ``from exc`` so the original stays available to debuggers.
    """
    message = " ".join(f"{type(exc).__name__}: {exc}".split())
    for secret in secrets:
        message = message.replace(secret, "***")
    return StoreUnavailableError(f"{store} unavailable: {message}")
