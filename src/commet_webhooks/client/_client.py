"""``Commet`` and ``AsyncCommet``: thin sync and async transports over :mod:`._core`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TypeVar

try:
    import anyio
    import httpx
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.client", "client", exc) from exc

from .._api_models import API_VERSION
from .._parsing import Body
from .._parsing import verify_and_parse as _verify_and_parse
from .._signing import verify as _verify
from ..events import WebhookEvent
from ._core import (
    MAX_RESPONSE_BYTES,
    Answer,
    ApiResponse,
    Call,
    ClientConfig,
    RequestCore,
    RetryIn,
    active_subscription_call,
    feature_access_call,
    feature_access_list_call,
    feature_check_call,
    track_usage_call,
)
from ._deadline import DeadlineTransport, attempt_deadline
from ._models import (
    FeatureAccess,
    FeatureAccessList,
    FeatureCheck,
    Subscription,
    UsageEvent,
    UsageEventProperty,
)

__all__ = ["AsyncCommet", "Commet", "WebhookHelpers"]

T = TypeVar("T")

Properties = Mapping[str, str] | Sequence[UsageEventProperty | Mapping[str, str]]


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

    ``api_key``: the ``ck_...`` key, sent as ``x-api-key`` (never logged or shown); its
    organization decides whether calls see sandbox or live data. ``api_version``: sent
    as ``Commet-Version`` on every request (default ``2026-08-27``, the version the
    models describe). ``environment``: ``"production"`` or ``"sandbox"``, a label kept
    for compatibility; both use the platform's one host. ``base_url``: another scheme
    and host (a local emulator, a proxy); paths stay ``/api/v1/...`` below it.
    ``timeout``: seconds one attempt may take in total, however slowly the answer
    arrives (None: no limit). ``retries``: extra attempts after a 408, 500, 502-504,
    a 429 carrying ``Retry-After``, a timeout or a connection failure; 0 disables
    them. ``backoff_base``: first retry delay in seconds, doubled each time up to
    ``max_backoff``, with jitter. ``max_retry_after``: the longest ``Retry-After``
    honoured. ``max_response_bytes``: answers larger than this are refused.
    """

    webhooks = WebhookHelpers()

    def __init__(
        self,
        api_key: str,
        *,
        environment: str = "production",
        base_url: str | None = None,
        api_version: str = API_VERSION,
        timeout: float | None = 30.0,
        retries: int = 3,
        backoff_base: float = 1.0,
        max_backoff: float = 8.0,
        max_retry_after: float = 30.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
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
                api_version=api_version,
                max_response_bytes=max_response_bytes,
            )
        )
        self._open()

    def _open(self) -> None:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """Scheme and host the client talks to; request paths are ``/api/v1/...`` below it."""
        return self._core.config.base_url

    @property
    def environment(self) -> str:
        """The ``environment`` label given at construction."""
        return self._core.config.environment

    @property
    def api_version(self) -> str:
        """The ``Commet-Version`` sent with every request."""
        return self._core.config.api_version

    def __repr__(self) -> str:
        c = self._core.config
        return (
            f"{type(self).__name__}(base_url={c.base_url!r}, api_version={c.api_version!r}, "
            f"environment={c.environment!r}, timeout={c.timeout!r}, retries={c.retries!r})"
        )


# --------------------------------------------------------------------------- sync


class Commet(_ClientBase):
    """Synchronous client for Commet's state API.

    >>> with Commet(api_key="ck_...") as commet:
    ...     sub = commet.subscriptions.get_active(customer_id="user_123")
    ...     if sub and sub.is_active:
    ...         ...

    One connection pool is reused across calls (and is safe to share between
    threads); close it with :meth:`close` or a ``with`` block.
    """

    subscriptions: Subscriptions
    features: Features
    feature_access: FeatureAccessResource
    usage: Usage
    _http: httpx.Client

    def _open(self) -> None:
        self._http = httpx.Client(transport=DeadlineTransport(), **self._core.http_options())
        self.subscriptions = Subscriptions(self)
        self.features = Features(self)
        self.feature_access = FeatureAccessResource(self)
        self.usage = Usage(self)

    def _send(self, call: Call[T]) -> ApiResponse[T]:
        attempt = 0
        while True:
            try:
                answer = self._fetch(call)
            except httpx.TransportError as exc:
                verdict: ApiResponse[T] | RetryIn = self._core.on_transport_error(
                    call, exc, attempt
                )
            else:
                verdict = self._core.on_answer(call, answer, attempt)
            if not isinstance(verdict, RetryIn):
                return verdict
            time.sleep(verdict.seconds)
            attempt += 1

    def _fetch(self, call: Call[T]) -> Answer:
        with (
            attempt_deadline(self._core.config.timeout),
            self._http.stream(
                call.method,
                call.path,
                params=call.params,
                content=call.body,
                headers=call.headers(),
            ) as response,
        ):
            reader = self._core.body_reader(call, response.status_code, response.headers)
            for chunk in response.iter_bytes():
                reader.feed(chunk)
            return Answer(response.status_code, response.headers, reader.content())

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

    def get(self, customer_id: str) -> ApiResponse[Subscription | None]:
        """The customer's active subscription, wrapped; ``data`` is None when there is none.

        ``GET /api/v1/subscriptions/active``. (The official SDK's ``get`` reads a
        subscription by its own id; here ``get`` keeps its original meaning.)
        """
        return self._client._send(active_subscription_call(customer_id))

    def get_active(self, *, customer_id: str) -> Subscription | None:
        """The customer's active subscription, or None (the official SDK's name)."""
        return self.get(customer_id).data


class Features:
    """Feature access of a customer, wrapped in :class:`ApiResponse`."""

    def __init__(self, client: Commet) -> None:
        self._client = client

    def check(self, *, code: str, customer_id: str) -> ApiResponse[FeatureCheck]:
        """Whether the customer may use the feature: ``response.data.allowed``."""
        return self._client._send(feature_check_call(code, customer_id))

    def get(self, *, code: str, customer_id: str) -> ApiResponse[FeatureAccess]:
        """The customer's full access to the feature (usage, limits, overage)."""
        return self._client._send(feature_access_call(code, customer_id))


class FeatureAccessResource:
    """``commet.feature_access``: the official SDK's names for feature access."""

    def __init__(self, client: Commet) -> None:
        self._client = client

    def get(self, code: str, *, customer_id: str) -> FeatureAccess:
        """``GET /api/v1/feature-access/{code}``: one feature's access and usage."""
        return self._client._send(feature_access_call(code, customer_id)).data

    def list(self, *, customer_id: str) -> FeatureAccessList:
        """``GET /api/v1/feature-access``: every feature's access for the customer."""
        return self._client._send(feature_access_list_call(customer_id)).data


class Usage:
    """``commet.usage``: record consumption of metered features."""

    def __init__(self, client: Commet) -> None:
        self._client = client

    def track(
        self,
        *,
        feature_code: str,
        customer_id: str,
        value: float | None = None,
        event_id: str | None = None,
        timestamp: str | datetime | None = None,
        properties: Properties | None = None,
        idempotency_key: str | None = None,
    ) -> UsageEvent:
        """``POST /api/v1/usage/events``. ``event_id`` lets Commet drop duplicates of the
        same event; the ``Idempotency-Key`` (generated unless given) makes the client's
        own retries safe."""
        call = track_usage_call(
            feature_code=feature_code,
            customer_id=customer_id,
            value=value,
            event_id=event_id,
            timestamp=timestamp,
            properties=properties,
            idempotency_key=idempotency_key,
        )
        return self._client._send(call).data


# --------------------------------------------------------------------------- async


class AsyncCommet(_ClientBase):
    """Asynchronous client for Commet's state API; mirrors :class:`Commet` with ``await``.

    >>> async with AsyncCommet(api_key="ck_...") as commet:
    ...     access = await commet.feature_access.get("api_access", customer_id="user_123")

    Safe to share between many concurrent tasks: one connection pool serves them all.
    """

    subscriptions: AsyncSubscriptions
    features: AsyncFeatures
    feature_access: AsyncFeatureAccessResource
    usage: AsyncUsage
    _http: httpx.AsyncClient

    def _open(self) -> None:
        self._http = httpx.AsyncClient(**self._core.http_options())
        self.subscriptions = AsyncSubscriptions(self)
        self.features = AsyncFeatures(self)
        self.feature_access = AsyncFeatureAccessResource(self)
        self.usage = AsyncUsage(self)

    async def _send(self, call: Call[T]) -> ApiResponse[T]:
        attempt = 0
        while True:
            try:
                answer = await self._fetch(call)
            except httpx.TransportError as exc:
                verdict: ApiResponse[T] | RetryIn = self._core.on_transport_error(
                    call, exc, attempt
                )
            else:
                verdict = self._core.on_answer(call, answer, attempt)
            if not isinstance(verdict, RetryIn):
                return verdict
            await anyio.sleep(verdict.seconds)
            attempt += 1

    async def _fetch(self, call: Call[T]) -> Answer:
        timeout = self._core.config.timeout
        try:
            with anyio.fail_after(timeout):
                async with self._http.stream(
                    call.method,
                    call.path,
                    params=call.params,
                    content=call.body,
                    headers=call.headers(),
                ) as response:
                    reader = self._core.body_reader(call, response.status_code, response.headers)
                    async for chunk in response.aiter_bytes():
                        reader.feed(chunk)
                    return Answer(response.status_code, response.headers, reader.content())
        except TimeoutError:
            raise httpx.ReadTimeout(f"the attempt took longer than {timeout}s") from None

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

    async def get(self, customer_id: str) -> ApiResponse[Subscription | None]:
        """The customer's active subscription, wrapped; ``data`` is None when there is none."""
        return await self._client._send(active_subscription_call(customer_id))

    async def get_active(self, *, customer_id: str) -> Subscription | None:
        """The customer's active subscription, or None (the official SDK's name)."""
        return (await self.get(customer_id)).data


class AsyncFeatures:
    """Feature access of a customer, wrapped in :class:`ApiResponse` (async)."""

    def __init__(self, client: AsyncCommet) -> None:
        self._client = client

    async def check(self, *, code: str, customer_id: str) -> ApiResponse[FeatureCheck]:
        """Whether the customer may use the feature: ``response.data.allowed``."""
        return await self._client._send(feature_check_call(code, customer_id))

    async def get(self, *, code: str, customer_id: str) -> ApiResponse[FeatureAccess]:
        """The customer's full access to the feature (usage, limits, overage)."""
        return await self._client._send(feature_access_call(code, customer_id))


class AsyncFeatureAccessResource:
    """``commet.feature_access`` (async)."""

    def __init__(self, client: AsyncCommet) -> None:
        self._client = client

    async def get(self, code: str, *, customer_id: str) -> FeatureAccess:
        """``GET /api/v1/feature-access/{code}``: one feature's access and usage."""
        return (await self._client._send(feature_access_call(code, customer_id))).data

    async def list(self, *, customer_id: str) -> FeatureAccessList:
        """``GET /api/v1/feature-access``: every feature's access for the customer."""
        return (await self._client._send(feature_access_list_call(customer_id))).data


class AsyncUsage:
    """``commet.usage`` (async)."""

    def __init__(self, client: AsyncCommet) -> None:
        self._client = client

    async def track(
        self,
        *,
        feature_code: str,
        customer_id: str,
        value: float | None = None,
        event_id: str | None = None,
        timestamp: str | datetime | None = None,
        properties: Properties | None = None,
        idempotency_key: str | None = None,
    ) -> UsageEvent:
        """``POST /api/v1/usage/events`` (see :meth:`Usage.track`)."""
        call = track_usage_call(
            feature_code=feature_code,
            customer_id=customer_id,
            value=value,
            event_id=event_id,
            timestamp=timestamp,
            properties=properties,
            idempotency_key=idempotency_key,
        )
        return (await self._client._send(call)).data
