"""``Commet`` and ``AsyncCommet``: thin sync and async transports over :mod:`._core`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import TypeVar

try:
    import anyio
    import httpx
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.client", "client", exc) from exc

from .._parsing import Body
from .._parsing import verify_and_parse as _verify_and_parse
from .._signing import verify as _verify
from ..events import WebhookEvent
from ._core import (
    ApiResponse,
    Call,
    ClientConfig,
    RequestCore,
    RetryIn,
    active_subscription_call,
    feature_call,
    feature_check_call,
)
from ._models import ActiveSubscription, FeatureAccess, FeatureCheck

__all__ = ["AsyncCommet", "Commet", "WebhookHelpers"]

T = TypeVar("T")


class WebhookHelpers:
    """``commet.webhooks``: the signature helpers of :mod:`commet_webhooks`, for convenience."""

    @staticmethod
    def verify(payload: bytes | str, signature: str | None, secret: str | Sequence[str]) -> bool:
        """Same as :func:`commet_webhooks.verify`."""
        return _verify(payload, signature, secret)

    @staticmethod
    def verify_and_parse(
        raw_body: Body, signature: str | None, secret: str | Sequence[str]
    ) -> WebhookEvent | None:
        """Same as :func:`commet_webhooks.verify_and_parse`."""
        return _verify_and_parse(raw_body, signature, secret)


class _ClientBase:
    """Settings, ``repr`` and ``webhooks`` shared by both clients.

    ``api_key``: the ``ck_...`` key, sent as ``x-api-key`` (never logged or shown).
    ``environment``: ``"production"`` (https://commet.co) or ``"sandbox"``
    (https://sandbox.commet.co). ``base_url``: another scheme and host (for example a
    local emulator); paths stay ``/api/...``. ``timeout``: seconds per attempt (None:
    no limit). ``retries``: extra attempts after a 408, 429, 5xx (500, 502-504),
    timeout or connection failure; 0 disables them. ``backoff_base``: first retry
    delay in seconds, doubled each time up to ``max_backoff``, with jitter.
    ``max_retry_after``: the longest ``Retry-After`` the client will wait for.
    """

    webhooks = WebhookHelpers()

    def __init__(
        self,
        api_key: str,
        *,
        environment: str = "production",
        base_url: str | None = None,
        timeout: float | None = 30.0,
        retries: int = 3,
        backoff_base: float = 1.0,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
    ) -> None:
        self._core = RequestCore(
            ClientConfig.build(
                api_key,
                environment=environment,
                base_url=base_url,
                timeout=timeout,
                retries=retries,
                backoff_base=backoff_base,
                max_backoff=max_backoff,
                max_retry_after=max_retry_after,
            )
        )
        self._open()

    def _open(self) -> None:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """Scheme and host the client talks to; request paths are ``/api/...`` below it."""
        return self._core.config.base_url

    @property
    def environment(self) -> str:
        """``"production"`` or ``"sandbox"``."""
        return self._core.config.environment

    def __repr__(self) -> str:
        c = self._core.config
        return (
            f"{type(self).__name__}(base_url={c.base_url!r}, environment={c.environment!r}, "
            f"timeout={c.timeout!r}, retries={c.retries!r})"
        )


# --------------------------------------------------------------------------- sync


class Commet(_ClientBase):
    """Synchronous client for Commet's state API.

    >>> with Commet(api_key="ck_...") as commet:
    ...     sub = commet.subscriptions.get("user_123")
    ...     if sub.data and sub.data.is_active:
    ...         ...

    One connection pool is reused across calls (and is safe to share between
    threads); close it with :meth:`close` or a ``with`` block.
    """

    subscriptions: Subscriptions
    features: Features
    _http: httpx.Client

    def _open(self) -> None:
        self._http = httpx.Client(**self._core.http_options())
        self.subscriptions = Subscriptions(self)
        self.features = Features(self)

    def _send(self, call: Call[T]) -> ApiResponse[T]:
        attempt = 0
        while True:
            try:
                response = self._http.get(call.path, params=call.params)
            except httpx.TransportError as exc:
                verdict: ApiResponse[T] | RetryIn = self._core.on_transport_error(
                    call, exc, attempt
                )
            else:
                verdict = self._core.on_response(call, response, attempt)
            if not isinstance(verdict, RetryIn):
                return verdict
            time.sleep(verdict.seconds)
            attempt += 1

    def close(self) -> None:
        """Close the connection pool. Safe to call more than once."""
        self._http.close()

    def __enter__(self) -> Commet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Subscriptions:
    """Subscription state of a customer."""

    def __init__(self, client: Commet) -> None:
        self._client = client

    def get(self, customer_id: str) -> ApiResponse[ActiveSubscription | None]:
        """The customer's active subscription; ``data`` is None when there is none."""
        return self._client._send(active_subscription_call(customer_id))


class Features:
    """Feature access of a customer."""

    def __init__(self, client: Commet) -> None:
        self._client = client

    def check(self, *, code: str, customer_id: str) -> ApiResponse[FeatureCheck]:
        """Whether the customer may use the feature: ``response.data.allowed``."""
        return self._client._send(feature_check_call(code, customer_id))

    def get(self, *, code: str, customer_id: str) -> ApiResponse[FeatureAccess]:
        """The customer's full access to the feature (usage, limits, overage)."""
        return self._client._send(feature_call(code, customer_id))


# --------------------------------------------------------------------------- async


class AsyncCommet(_ClientBase):
    """Asynchronous client for Commet's state API; mirrors :class:`Commet` with ``await``.

    >>> async with AsyncCommet(api_key="ck_...") as commet:
    ...     chk = await commet.features.check(code="api_access", customer_id="user_123")

    Safe to share between many concurrent tasks: one connection pool serves them all.
    """

    subscriptions: AsyncSubscriptions
    features: AsyncFeatures
    _http: httpx.AsyncClient

    def _open(self) -> None:
        self._http = httpx.AsyncClient(**self._core.http_options())
        self.subscriptions = AsyncSubscriptions(self)
        self.features = AsyncFeatures(self)

    async def _send(self, call: Call[T]) -> ApiResponse[T]:
        attempt = 0
        while True:
            try:
                response = await self._http.get(call.path, params=call.params)
            except httpx.TransportError as exc:
                verdict: ApiResponse[T] | RetryIn = self._core.on_transport_error(
                    call, exc, attempt
                )
            else:
                verdict = self._core.on_response(call, response, attempt)
            if not isinstance(verdict, RetryIn):
                return verdict
            await anyio.sleep(verdict.seconds)
            attempt += 1

    async def aclose(self) -> None:
        """Close the connection pool. Safe to call more than once."""
        await self._http.aclose()

    async def close(self) -> None:
        """Alias of :meth:`aclose`."""
        await self.aclose()

    async def __aenter__(self) -> AsyncCommet:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncSubscriptions:
    """Subscription state of a customer (async)."""

    def __init__(self, client: AsyncCommet) -> None:
        self._client = client

    async def get(self, customer_id: str) -> ApiResponse[ActiveSubscription | None]:
        """The customer's active subscription; ``data`` is None when there is none."""
        return await self._client._send(active_subscription_call(customer_id))


class AsyncFeatures:
    """Feature access of a customer (async)."""

    def __init__(self, client: AsyncCommet) -> None:
        self._client = client

    async def check(self, *, code: str, customer_id: str) -> ApiResponse[FeatureCheck]:
        """Whether the customer may use the feature: ``response.data.allowed``."""
        return await self._client._send(feature_check_call(code, customer_id))

    async def get(self, *, code: str, customer_id: str) -> ApiResponse[FeatureAccess]:
        """The customer's full access to the feature (usage, limits, overage)."""
        return await self._client._send(feature_call(code, customer_id))
