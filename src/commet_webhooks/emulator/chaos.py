"""Chaos on demand: what production networks do to webhooks, on a laptop.

Per endpoint (or for all, with ``--chaos``), each scheduled attempt may be:

- **duplicated** (``duplicates``): after it succeeds, the same bytes are sent again,
  as a sender that never saw the first answer would;
- **reordered** (``reorder``): held back in the outbox for up to ``max_delay``
  seconds, so events emitted after it arrive first;
- **delayed** (``delay``): sent after up to ``max_delay`` seconds on the wire (a slow
  network; the receiver's clock sees a late request);
- **dropped** (``drop``): sent, but its answer is lost: the receiver got the event,
  the emulator counts a failure and retries (the receiver sees it again).

Each is a probability from 0 to 1. ``seed`` makes the dice repeatable. Manual
redeliveries and test sends are never touched. :func:`roll` decides, without I/O.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Chaos", "ChaosRoll", "parse_chaos", "roll"]


@dataclass(frozen=True)
class Chaos:
    duplicates: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    drop: float = 0.0
    max_delay: float = 2.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("duplicates", "reorder", "delay", "drop"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ValueError(f"chaos {name} must be a probability from 0 to 1, got {value!r}")
        if not (isinstance(self.max_delay, (int, float)) and math.isfinite(self.max_delay)):
            raise ValueError("chaos max_delay must be a number of seconds")
        if not 0 <= self.max_delay <= 60:
            raise ValueError("chaos max_delay must be from 0 to 60 seconds")

    @property
    def active(self) -> bool:
        return any((self.duplicates, self.reorder, self.delay, self.drop))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_chaos(text: str) -> Chaos:
    """``"duplicates=0.1,reorder=0.2,max_delay=1"`` -> :class:`Chaos`.

    ``ValueError`` names the part that is wrong.
    """
    known = {f.name for f in fields(Chaos)}
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = part.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            raise ValueError(
                f"chaos option {part!r} is not NAME=VALUE with NAME one of "
                + ", ".join(sorted(known))
            )
        try:
            values[name] = int(raw) if name == "seed" else float(raw)
        except ValueError:
            raise ValueError(f"chaos option {part!r}: {raw.strip()!r} is not a number") from None
    return Chaos(**values)


@dataclass(frozen=True)
class ChaosRoll:
    """What the dice decided for one attempt."""

    postpone: float = 0.0  # seconds to hold the attempt back in the outbox
    delay: float = 0.0  # seconds to wait before sending
    drop: bool = False
    duplicate: bool = False

    @property
    def note(self) -> str | None:
        parts = []
        if self.delay:
            parts.append(f"delayed {self.delay:.2f} s")
        if self.drop:
            parts.append("answer dropped")
        if self.duplicate:
            parts.append("sent twice")
        return "chaos: " + ", ".join(parts) if parts else None


def roll(chaos: Chaos, rng: random.Random, *, already_postponed: bool) -> ChaosRoll:
    """Throw the dice for one scheduled attempt (postponed at most once)."""
    if not chaos.active:
        return ChaosRoll()
    if not already_postponed and rng.random() < chaos.reorder:
        return ChaosRoll(postpone=rng.uniform(0.05, max(chaos.max_delay, 0.05)))
    return ChaosRoll(
        delay=rng.uniform(0, chaos.max_delay) if rng.random() < chaos.delay else 0.0,
        drop=rng.random() < chaos.drop,
        duplicate=rng.random() < chaos.duplicates,
    )
