"""Running coroutines from sync code, and sync callables from async code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Iterable
from typing import Any

__all__ = ["gather_settled", "run_blocking"]

_thread_state = threading.local()


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def gather_settled(coros: Iterable[Awaitable[Any]]) -> list[Any]:
    """Every result or exception, in order (no task is left running)."""
    return list(await asyncio.gather(*coros, return_exceptions=True))


def run_blocking(coro: Awaitable[Any]) -> Any:
    """Run ``coro`` to completion from synchronous code.

    Each thread keeps one private event loop (created on first use and reused, so a
    sync server does not pay for a new loop per request). If the calling thread
    already runs a loop, the coroutine runs on a short-lived helper thread instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = getattr(_thread_state, "loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            _thread_state.loop = loop
        return loop.run_until_complete(_await(coro))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(_await(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="commet-webhooks-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def loop_running_here() -> bool:
    """Whether the calling thread is running an event loop right now."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
