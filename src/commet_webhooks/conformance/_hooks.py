"""The one hook a receiver calls to take part in the crash-and-retry rule.

It lives apart from the suite so that importing it from application code costs
nothing: no HTTP client, no test dependency.
"""

from __future__ import annotations

import json
import threading
from typing import Any

__all__ = ["CRASH_MARKER", "SimulatedCrash", "simulate_crash"]

#: Top-level envelope key the suite adds to the one delivery it wants to crash.
#: Commet never sends it, and only a correctly signed body reaches a handler.
CRASH_MARKER = "commetConformanceCrash"

_crashed: set[str] = set()
_lock = threading.Lock()


class SimulatedCrash(RuntimeError):
    """Raised once by :func:`simulate_crash` for a delivery the suite marked."""


def simulate_crash(event: Any) -> None:
    """Raise :class:`SimulatedCrash` the first time a marked event reaches this point.

    Call it at the top of the handler whose effect your probe counts. Every real
    Commet event passes straight through; a delivery the conformance suite marked
    raises on its first run only, so the retry that follows runs the handler to the end.
    """
    raw = getattr(event, "raw", None)
    if not isinstance(raw, dict) or raw.get(CRASH_MARKER) is not True:
        return
    key = str(raw.get("id") or json.dumps(raw, sort_keys=True, default=str))
    with _lock:
        if key in _crashed:
            return
        _crashed.add(key)
    raise SimulatedCrash(f"simulated crash for conformance check ({key})")
