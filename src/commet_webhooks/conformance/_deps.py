"""The HTTP client of the suite, with a hint when the testing extra is not installed."""

from __future__ import annotations

try:
    import httpx
except ImportError as exc:  # the testing extra is not installed
    from .._optional import missing_extra

    raise missing_extra("the conformance suite", "testing", exc) from exc

__all__ = ["httpx"]
