"""Registration: which handlers run for which event type, composable across modules.

A :class:`Router` collects handlers with the same ``on_<event>`` keywords,
``@router.on(...)`` and ``@router.on_payload`` forms as ``Webhooks`` (which is itself a
router). Routers include other routers, so an application keeps its billing handlers
in ``billing.py`` and its email handlers in ``emails.py`` and gathers them in one
place::

    billing = Router(on_subscription_activated=grant_access)
    emails = Router()

    @emails.on("payment.failed")
    async def dunning_email(event: PaymentFailed) -> None: ...

    webhooks = Webhooks(webhook_secret=SECRET, routers=[billing, emails])

The dispatcher reads a flat plan (event type -> handlers) rebuilt only when a handler
is added anywhere in the tree, so routing costs one dict lookup per delivery.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .events import EVENT_TYPES, EventType, HandlerKeywords

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Handler", "Registered", "Router"]

Handler = Callable[[Any], Awaitable[None] | None]
"""A handler takes the typed event; it may be a plain or an ``async`` function."""

_F = TypeVar("_F", bound=Callable[..., Any])

KEYWORD_TO_EVENT: dict[str, str] = {
    spec.handler_keyword: name for name, spec in EVENT_TYPES.items()
}


@dataclass(frozen=True)
class Registered:
    """A registered callable, whether it is a coroutine function, and its name."""

    fn: Callable[..., Any]
    is_async: bool
    name: str
    """The qualified name (logs, metrics, spans), worked out once by :func:`registered`."""


def registered(fn: Any) -> Registered:
    if not callable(fn):
        raise TypeError(f"handler must be callable, got {type(fn).__name__}")
    name = getattr(fn, "__qualname__", None)
    return Registered(fn, _is_async_callable(fn), name if isinstance(name, str) else repr(fn))


def _is_async_callable(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


def check_keywords(handlers: Iterable[str], extra: str = "on_payload") -> None:
    """Refuse keywords that name no event type, suggesting the closest one."""
    unknown = sorted(set(handlers) - set(KEYWORD_TO_EVENT))
    if not unknown:
        return
    described = []
    for keyword in unknown:
        close = difflib.get_close_matches(keyword, list(KEYWORD_TO_EVENT), n=1, cutoff=0.75)
        described.append(f"{keyword} (did you mean {close[0]}?)" if close else keyword)
    raise TypeError(
        f"unknown handler keyword(s) {', '.join(described)}; valid keywords are {extra} "
        "and on_<event type with '.' as '_'> for every event type in "
        "commet_webhooks.EventType (e.g. on_payment_failed, on_trial_started)"
    )


class Router:
    """Handlers by event type, plus catch-all handlers; includes other routers."""

    def __init__(
        self,
        *routers: Router,
        on_payload: Handler | None = None,
        **handlers: Unpack[HandlerKeywords],
    ) -> None:
        check_keywords(handlers)
        self._handlers: dict[str, list[Registered]] = {}
        self._catch_all: list[Registered] = []
        self._children: list[Router] = []
        self._parents: list[Router] = []
        self._plan: dict[str, tuple[Registered, ...]] = {}
        self._unknown_plan: tuple[Registered, ...] = ()
        for keyword, fn in handlers.items():
            if fn is not None:
                self.on(KEYWORD_TO_EVENT[keyword])(cast("Handler", fn))
        if on_payload is not None:
            self.on_payload(on_payload)
        for router in routers:
            self.include_router(router)
        self._rebuild_plan()

    # ------------------------------------------------------------ registration

    def on(self, event_type: str | EventType) -> Callable[[_F], _F]:
        """Decorator: register a handler for ``event_type``. Several per event are fine.

        Any event type may be named; one this library does not model reaches its
        handlers as an :class:`~commet_webhooks.UnknownEvent`.
        """
        name = event_type.value if isinstance(event_type, EventType) else event_type
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"invalid event type {event_type!r}")

        def register(fn: _F) -> _F:
            self._handlers.setdefault(name, []).append(registered(fn))
            self._changed()
            return fn

        return register

    def on_payload(self, fn: _F) -> _F:
        """Decorator: register a catch-all handler that sees every verified event."""
        self._catch_all.append(registered(fn))
        self._changed()
        return fn

    def include_router(self, router: Router) -> None:
        """Run ``router``'s handlers too (handlers added to it later are included)."""
        if not isinstance(router, Router):
            raise TypeError(f"include_router takes a Router, got {type(router).__name__}")
        if router is self or self in router._ancestors_and_self_of_tree():
            raise ValueError("a router cannot include itself, directly or through another")
        self._children.append(router)
        router._parents.append(self)
        self._changed()

    def _ancestors_and_self_of_tree(self) -> set[Router]:
        """Every router reachable from here downward (to refuse cycles)."""
        seen: set[Router] = set()
        stack = [self]
        while stack:
            router = stack.pop()
            if router not in seen:
                seen.add(router)
                stack.extend(router._children)
        return seen

    # ------------------------------------------------------------ the plan

    def _changed(self) -> None:
        self._rebuild_plan()
        for parent in self._parents:
            parent._changed()

    def _collect(self) -> tuple[dict[str, list[Registered]], list[Registered]]:
        by_type = {name: list(hs) for name, hs in self._handlers.items()}
        catch_all = list(self._catch_all)
        for child in self._children:
            child_types, child_catch_all = child._collect()
            for name, hs in child_types.items():
                by_type.setdefault(name, []).extend(hs)
            catch_all.extend(child_catch_all)
        return by_type, catch_all

    def _rebuild_plan(self) -> None:
        by_type, catch_all = self._collect()
        every = tuple(catch_all)
        self._plan = {name: tuple(hs) + every for name, hs in by_type.items()}
        self._unknown_plan = every

    def plan_for(self, event_type: str) -> tuple[Registered, ...]:
        """The handlers to run for ``event_type``, specific ones first, catch-alls last."""
        return self._plan.get(event_type, self._unknown_plan)

    def catch_all(self) -> tuple[Registered, ...]:
        """The ``on_payload`` handlers of the whole tree."""
        return self._unknown_plan

    def handlers_for(self, event_type: str) -> tuple[Callable[..., Any], ...]:
        """The handlers that would run for ``event_type`` (catch-all included)."""
        return tuple(r.fn for r in self.plan_for(event_type))

    @property
    def event_types(self) -> list[str]:
        """Event types with at least one specific handler, sorted."""
        return sorted(self._plan)
