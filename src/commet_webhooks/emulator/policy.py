"""The delivery policy, and the pure rule that moves a delivery on after an attempt.

The platform's policy is the default: 8 attempts (the first, then after 1 min,
5 min, 15 min, 30 min, 1 h, 1 h and 1 h), a 10 s timeout, and an endpoint
disabled after three events in a row whose deliveries failed. Each part can be
overridden; ``time_scale`` divides every delay (not the timeout).

:func:`next_state` holds the whole rule and does no I/O, so it is tested on its own
and the outbox only applies what it returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AUTO_DISABLE_AFTER",
    "DEFAULT_RETRY_SCHEDULE",
    "DELIVERY_TIMEOUT",
    "DeliveryPolicy",
    "DeliveryState",
    "NextState",
    "next_state",
]

#: Seconds to wait after each failed attempt: 1 min, 5 min, 15 min, 30 min, 1 h, 1 h, 1 h.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (60, 300, 900, 1800, 3600, 3600, 3600)
#: A receiver that has not answered within this many seconds has failed the attempt.
DELIVERY_TIMEOUT = 10.0
#: Events in a row whose delivery failed before the endpoint is disabled.
AUTO_DISABLE_AFTER = 3


@dataclass(frozen=True)
class DeliveryPolicy:
    """How deliveries are attempted; ``auto_disable_after=None`` never disables."""

    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    timeout: float = DELIVERY_TIMEOUT
    auto_disable_after: int | None = AUTO_DISABLE_AFTER
    time_scale: float = 1.0

    @classmethod
    def build(
        cls,
        *,
        retry_schedule: Sequence[float] | None = None,
        timeout: float | None = None,
        auto_disable_after: int | Literal["default"] | None = "default",
        time_scale: float = 1.0,
    ) -> DeliveryPolicy:
        """The platform policy with the given parts replaced; ``ValueError`` when unusable.

        ``auto_disable_after=None`` turns auto-disabling off.
        """
        if (
            not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale))
            or time_scale <= 0
        ):
            raise ValueError("time_scale must be a positive number")
        schedule = DEFAULT_RETRY_SCHEDULE if retry_schedule is None else tuple(retry_schedule)
        if any(not math.isfinite(d) or d < 0 for d in schedule):
            raise ValueError("retry_schedule delays must be non-negative numbers of seconds")
        wait = DELIVERY_TIMEOUT if timeout is None else timeout
        if not (isinstance(wait, (int, float)) and math.isfinite(wait)) or wait <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        disable = AUTO_DISABLE_AFTER if auto_disable_after == "default" else auto_disable_after
        if disable is not None and (not isinstance(disable, int) or disable < 1):
            raise ValueError("auto_disable_after must be at least 1 (or None: never disable)")
        return cls(
            retry_schedule=tuple(float(d) for d in schedule),
            timeout=float(wait),
            auto_disable_after=disable,
            time_scale=float(time_scale),
        )

    @property
    def max_attempts(self) -> int:
        """Scheduled attempts per delivery: the first plus one per delay."""
        return 1 + len(self.retry_schedule)

    def retry_delay(self, retries_done: int) -> float:
        """Real seconds to wait before retry number ``retries_done + 1``."""
        return self.retry_schedule[retries_done] / self.time_scale


@dataclass(frozen=True)
class DeliveryState:
    """A delivery as it stood when an attempt finished."""

    status: str
    #: Scheduled (not manual) attempts made before this one.
    auto_attempts: int
    #: Another attempt of this delivery is already queued.
    other_queued: bool


@dataclass(frozen=True)
class NextState:
    """What to write after an attempt."""

    status: str
    auto_attempts: int
    #: Queue a scheduled retry this many real seconds after the attempt finished.
    retry_in: float | None = None
    #: How the attempt counts for its endpoint's run of failed events.
    endpoint: Literal["succeeded", "failed", "unchanged"] = "unchanged"


def next_state(
    policy: DeliveryPolicy, state: DeliveryState, *, ok: bool, manual: bool
) -> NextState:
    """The delivery after one attempt.

    A scheduled attempt that fails queues the next one after the policy's delay,
    until the delays run out and the delivery (one event) counts as failed for its
    endpoint -- also when a manual attempt is still queued behind the last scheduled
    one: the event has failed its schedule. A manual attempt is one extra try: it
    never queues retries, and a failed one does not count again (the event already
    counted when its schedule ran out). A success resets the endpoint's run of failures.
    """
    attempts = state.auto_attempts + (0 if manual else 1)
    if state.status == "canceled" or (state.status == "succeeded" and not ok):
        return NextState(state.status, attempts)  # too late to change anything
    if ok:
        return NextState("succeeded", attempts, endpoint="succeeded")
    retries_done = attempts - 1
    if not manual and retries_done < len(policy.retry_schedule):
        return NextState("pending", attempts, retry_in=policy.retry_delay(retries_done))
    endpoint: Literal["failed", "unchanged"] = "unchanged" if manual else "failed"
    if state.other_queued:  # a manual attempt is still ahead
        return NextState("pending", attempts, endpoint=endpoint)
    return NextState("failed", attempts, endpoint=endpoint)
