"""An in-process store: for tests and single-process receivers."""

from __future__ import annotations

import threading
import time

from ._base import DEFAULT_LEASE_SECONDS, DEFAULT_RETENTION_SECONDS, Claim, IdempotencyStore

__all__ = ["MemoryStore"]

_DONE = ""  # the owner recorded for a completed key


class MemoryStore(IdempotencyStore):
    """Keys live in a dict guarded by a lock; nothing survives the process.

    Use it for tests and single-process servers; several workers need
    ``SQLiteStore`` (one machine), ``RedisStore`` or ``PostgresStore``.
    """

    _PURGE_EVERY = 1024

    def __init__(
        self,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        super().__init__(lease_seconds=lease_seconds, retention_seconds=retention_seconds)
        self._lock = threading.Lock()
        # key -> (owner or _DONE, expiry on the monotonic clock)
        self._entries: dict[str, tuple[str, float]] = {}
        self._ops = 0

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, key: str, owner: str) -> Claim:
        now = time.monotonic()
        with self._lock:
            self._maybe_purge(now)
            entry = self._entries.get(key)
            if entry is not None and entry[1] > now:
                return Claim.DONE if entry[0] == _DONE else Claim.BUSY
            self._entries[key] = (owner, now + self.lease_seconds)
            return Claim.CLAIMED

    def complete(self, key: str, owner: str) -> bool:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != owner:
                return False
            self._entries[key] = (_DONE, now + self.retention_seconds)
            return True

    def release(self, key: str, owner: str) -> bool:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != owner:
                return False
            del self._entries[key]
            return True

    def renew(self, key: str, owner: str) -> bool:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != owner or entry[1] <= now:
                return False
            self._entries[key] = (owner, now + self.lease_seconds)
            return True

    # No I/O: the async variants call straight through instead of hopping threads.
    async def aclaim(self, key: str, owner: str) -> Claim:
        return self.claim(key, owner)

    async def acomplete(self, key: str, owner: str) -> bool:
        return self.complete(key, owner)

    async def arelease(self, key: str, owner: str) -> bool:
        return self.release(key, owner)

    async def arenew(self, key: str, owner: str) -> bool:
        return self.renew(key, owner)

    async def aclose(self) -> None:
        self.close()

    def _maybe_purge(self, now: float) -> None:
        self._ops += 1
        if self._ops % self._PURGE_EVERY:
            return
        expired = [k for k, (_, expiry) in self._entries.items() if expiry <= now]
        for k in expired:
            del self._entries[k]
