"""The request core shared by :class:`Commet` and :class:`AsyncCommet`.

Everything that does not touch a socket lives here: validating the configuration,
describing each call, reading answers (the platform's bare ``/api/v1`` objects, or a
``{"success", "data"}`` wrapper from older deployments), mapping errors, noticing
deprecations, capping answer sizes and deciding whether and when to retry. The sync
and async clients only send, read, sleep and loop.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import random
import re
import uuid
import warnings
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generic, NamedTuple, TypeVar, cast
from urllib.parse import quote

try:
    import httpx
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.client", "client", exc) from exc
import msgspec

from .. import __version__
from .._api_models import (
    API_VERSION,
    FeatureAccess,
    FeatureAccessList,
    Subscription,
    UsageEvent,
    UsageEventProperty,
    from_wire,
)
from ._errors import (
    CommetAPIError,
    CommetConnectionError,
    CommetTimeoutError,
    CommetValidationError,
)
from ._models import FeatureCheck

__all__ = [
    "API_PREFIX",
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "ENVIRONMENTS",
    "MAX_RESPONSE_BYTES",
    "RETRY_STATUSES",
    "Answer",
    "ApiResponse",
    "BodyReader",
    "Call",
    "ClientConfig",
    "RequestCore",
    "RetryIn",
    "backoff_delay",
    "parse_retry_after",
]

logger = logging.getLogger("commet_webhooks.client")

T = TypeVar("T")

#: The one host of the platform; the API key's organization decides sandbox or live.
DEFAULT_BASE_URL = "https://commet.co"

#: Every request path starts with this, below ``base_url``.
API_PREFIX = "/api/v1"

#: Accepted ``environment`` labels. Both live on the same host: the label is kept for
#: compatibility and for your own logs, it does not change where requests go.
ENVIRONMENTS: dict[str, str] = {
    "production": DEFAULT_BASE_URL,
    "sandbox": DEFAULT_BASE_URL,
}

#: Answers worth another attempt: the request may well succeed later. A 429 only
#: when it says when (``Retry-After``).
RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})

#: Default cap on the size of one answer (after decompression).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

# Failures where no answer arrived; with an Idempotency-Key even a write is safe to resend.
_RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    408: "request_timeout",
    409: "conflict",
    410: "endpoint_deprecated",
    429: "rate_limited",
}

_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

USER_AGENT = (
    f"commet-webhooks/{__version__} (python {platform.python_version()}; httpx {httpx.__version__})"
)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ApiResponse(Generic[T]):
    """A successful answer: ``success`` (always True), the typed ``data`` and notes.

    Every unsuccessful answer raises :class:`CommetAPIError` instead. ``data`` is None
    when the API has nothing to return, e.g. a customer without an active
    subscription. ``request_id`` is the ``x-request-id`` header, when sent.
    """

    success: bool
    data: T
    code: str | None = None
    message: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One state API request and the type its answer decodes to.

    ``nullable`` calls read an empty body, ``null`` or a 404 ``no_active_subscription``
    as "nothing" (``data`` None).
    """

    method: str
    path: str
    params: dict[str, str] | None
    data_type: Any
    body: bytes | None = None
    idempotency_key: str | None = field(default=None, repr=False)
    nullable: bool = False

    @property
    def label(self) -> str:
        """``METHOD /path`` for messages and logs (no query string: it names customers)."""
        return f"{self.method} {self.path}"

    def headers(self) -> dict[str, str]:
        """Per-request headers: a JSON content type and the idempotency key for writes."""
        headers: dict[str, str] = {}
        if self.body is not None:
            headers["content-type"] = "application/json"
        if self.idempotency_key is not None:
            headers["idempotency-key"] = self.idempotency_key
        return headers

    def read(self, data: Any) -> T:
        """Convert the answer's JSON value to the typed model (raises msgspec errors)."""
        result: T = from_wire(data, self.data_type)
        return result


class Answer(NamedTuple):
    """What came back for one attempt: status, headers and the (capped) body."""

    status: int
    headers: httpx.Headers
    content: bytes


class RetryIn(NamedTuple):
    """The core's verdict "send the request again after ``seconds``"."""

    seconds: float


# --------------------------------------------------------------------------- calls


def _required(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _segment(name: str, value: object) -> str:
    # One path segment: "/" and friends must not change the route.
    return quote(_required(name, value), safe="")


def active_subscription_call(customer_id: str) -> Call[Subscription | None]:
    """``GET /api/v1/subscriptions/active?customerId=ID``."""
    return Call(
        "GET",
        f"{API_PREFIX}/subscriptions/active",
        {"customerId": _required("customer_id", customer_id)},
        Subscription | None,
        nullable=True,
    )


def feature_access_call(code: str, customer_id: str) -> Call[FeatureAccess]:
    """``GET /api/v1/feature-access/{code}?customerId=ID``: the full feature access."""
    return Call(
        "GET",
        f"{API_PREFIX}/feature-access/{_segment('code', code)}",
        {"customerId": _required("customer_id", customer_id)},
        FeatureAccess,
    )


def feature_check_call(code: str, customer_id: str) -> Call[FeatureCheck]:
    """The same request as :func:`feature_access_call`, read as just ``allowed``."""
    return Call(
        "GET",
        f"{API_PREFIX}/feature-access/{_segment('code', code)}",
        {"customerId": _required("customer_id", customer_id)},
        FeatureCheck,
    )


def feature_access_list_call(customer_id: str) -> Call[FeatureAccessList]:
    """``GET /api/v1/feature-access?customerId=ID``: every feature of the customer."""
    return Call(
        "GET",
        f"{API_PREFIX}/feature-access",
        {"customerId": _required("customer_id", customer_id)},
        FeatureAccessList,
    )


def track_usage_call(
    *,
    feature_code: str,
    customer_id: str,
    value: float | None = None,
    event_id: str | None = None,
    timestamp: str | datetime | None = None,
    properties: Mapping[str, str] | Sequence[UsageEventProperty | Mapping[str, str]] | None = None,
    idempotency_key: str | None = None,
) -> Call[UsageEvent]:
    """``POST /api/v1/usage/events`` with an ``Idempotency-Key`` (generated if not given)."""
    body: dict[str, Any] = {
        "featureCode": _required("feature_code", feature_code),
        "customerId": _required("customer_id", customer_id),
    }
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("value must be a number")
        if not math.isfinite(value):
            raise ValueError("value must be a finite number")
        body["value"] = value
    if event_id is not None:
        body["eventId"] = _required("event_id", event_id)
    if timestamp is not None:
        body["timestamp"] = _timestamp(timestamp)
    if properties is not None:
        body["properties"] = _properties(properties)
    key = idempotency_key if idempotency_key is not None else f"cw-{uuid.uuid4()}"
    _required("idempotency_key", key)
    if not all(33 <= ord(ch) < 127 for ch in key) or len(key) > 255:
        raise ValueError("idempotency_key must be 1-255 visible ASCII characters")
    return Call(
        "POST",
        f"{API_PREFIX}/usage/events",
        None,
        UsageEvent,
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        idempotency_key=key,
    )


def _timestamp(value: str | datetime) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return _required("timestamp", value)


def _properties(
    value: Mapping[str, str] | Sequence[UsageEventProperty | Mapping[str, str]],
) -> list[dict[str, str]]:
    pairs: list[tuple[object, object]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (str, bytes)):
        raise ValueError("properties must be a mapping or a list of {property, value}")
    else:
        pairs = []
        for item in value:
            if isinstance(item, UsageEventProperty):
                pairs.append((item.property, item.value))
            elif isinstance(item, Mapping):
                pairs.append((item.get("property"), item.get("value")))
            else:
                raise ValueError("each property must be {'property': ..., 'value': ...}")
    out = []
    for name, val in pairs:
        if not isinstance(name, str) or not name or not isinstance(val, str):
            raise ValueError("property names and values must be strings")
        out.append({"property": name, "value": val})
    return out


# --------------------------------------------------------------------------- configuration


class _ApiKeyAuth(httpx.Auth):
    """Adds ``x-api-key`` to each request; its repr never shows the key."""

    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["x-api-key"] = self._key
        yield request

    def __repr__(self) -> str:
        return "<API key: redacted>"


@dataclass(frozen=True)
class ClientConfig:
    """Validated client settings. The key is kept out of ``repr``."""

    api_key: str = field(repr=False)
    environment: str
    base_url: str
    api_version: str
    timeout: float | None
    retries: int
    backoff_base: float
    max_backoff: float
    max_retry_after: float
    max_response_bytes: int = MAX_RESPONSE_BYTES

    @classmethod
    def build(
        cls,
        api_key: object,
        environment: str = "production",
        base_url: str | None = None,
        timeout: float | None = 30.0,
        retries: int = 3,
        backoff_base: float = 1.0,
        max_backoff: float = 8.0,
        max_retry_after: float = 30.0,
        *,
        api_version: str = API_VERSION,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> ClientConfig:
        """Check every setting; raise ``ValueError`` with a message that names the problem."""
        if environment not in ENVIRONMENTS:
            raise ValueError(f"environment must be 'production' or 'sandbox', not {environment!r}")
        if not isinstance(api_version, str) or not _VERSION_RE.match(api_version):
            raise ValueError(f"api_version must be a date like '2026-08-27', not {api_version!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError("retries must be an integer >= 0")
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise ValueError("max_response_bytes must be an integer >= 1")
        if timeout is not None:
            _non_negative("timeout", timeout, allow_zero=False)
        for name, value in (
            ("backoff_base", backoff_base),
            ("max_backoff", max_backoff),
            ("max_retry_after", max_retry_after),
        ):
            _non_negative(name, value)
        return cls(
            api_key=_check_api_key(api_key),
            environment=environment,
            base_url=_check_base_url(base_url) if base_url is not None else DEFAULT_BASE_URL,
            api_version=api_version,
            timeout=float(timeout) if timeout is not None else None,
            retries=retries,
            backoff_base=float(backoff_base),
            max_backoff=float(max_backoff),
            max_retry_after=float(max_retry_after),
            max_response_bytes=max_response_bytes,
        )


def _non_negative(name: str, value: object, *, allow_zero: bool = True) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0")


def _check_api_key(api_key: object) -> str:
    # Messages here must never include the key itself.
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("api_key is required: pass your Commet API key (ck_...)")
    key = api_key.strip()
    if not all(33 <= ord(ch) < 127 for ch in key):
        raise ValueError("api_key contains characters that cannot be sent in an HTTP header")
    return key


def _check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str):
        raise ValueError("base_url must be a string such as 'http://127.0.0.1:8787'")
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ValueError(f"base_url is not a valid URL: {base_url!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, not {base_url!r}")
    if url.query or url.fragment:
        raise ValueError("base_url must not carry a query string or fragment")
    root = str(url.copy_with(path=url.path.rstrip("/") or "/")).rstrip("/")
    if root.endswith(("/api", API_PREFIX)):
        raise ValueError(
            "base_url is the host root (e.g. 'https://commet.co'); leave out "
            f"'{API_PREFIX}', which every request path already starts with"
        )
    return root


# --------------------------------------------------------------------------- retry math


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with jitter: ``base * 2**attempt`` capped at ``cap``, then
    scaled by a random factor in [0.5, 1) so many clients do not retry in lockstep.
    """
    ceiling: float = min(cap, base * 2.0 ** min(attempt, 32))
    return ceiling * (0.5 + rand() / 2)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (delta seconds or an HTTP
    date), or None when absent, unreadable, zero, negative or in the past: the caller
    then falls back to its own backoff rather than retrying at once.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds


# --------------------------------------------------------------------------- body reading


class BodyReader:
    """Collects an answer's body, refusing to hold more than ``limit`` bytes."""

    def __init__(self, core: RequestCore, call: Call[Any], status: int, headers: httpx.Headers):
        self._core = core
        self._call = call
        self._status = status
        self._limit = core.config.max_response_bytes
        self._chunks: list[bytes] = []
        self._size = 0
        declared = headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self._limit:
            self._too_large()

    def feed(self, chunk: bytes) -> None:
        """Add one chunk; raises ``CommetAPIError`` once the limit is passed."""
        self._size += len(chunk)
        if self._size > self._limit:
            self._too_large()
        self._chunks.append(chunk)

    def content(self) -> bytes:
        """The whole body."""
        return b"".join(self._chunks)

    def _too_large(self) -> None:
        raise CommetAPIError(
            self._status,
            "response_too_large",
            f"the answer to {self._call.label} is larger than max_response_bytes="
            f"{self._limit}; it was not read",
            type="client_error",
        )


# --------------------------------------------------------------------------- log guard

# httpx and httpcore log raw response headers at DEBUG; a server that echoes the key
# in a header would put it in those logs. This filter, attached to their loggers,
# strips the key of every live client from their records.
_HTTP_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


class _KeyRedactingFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.cores: weakref.WeakSet[RequestCore] = weakref.WeakSet()
        self.installed = False

    def filter(self, record: logging.LogRecord) -> bool:
        keys = {core.config.api_key for core in list(self.cores)}
        if keys:
            message = record.getMessage()
            if any(key in message for key in keys):
                for key in keys:
                    message = message.replace(key, "[redacted]")
                record.msg, record.args = message, None
        return True

    def watch(self, core: RequestCore) -> None:
        self.cores.add(core)
        if not self.installed:
            for name in _HTTP_LOGGERS:
                logging.getLogger(name).addFilter(self)
            self.installed = True


_LOG_GUARD = _KeyRedactingFilter()


# --------------------------------------------------------------------------- the core


class RequestCore:
    """Turns HTTP outcomes into results, errors or retry verdicts. Holds no socket."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._deprecated_paths: set[str] = set()
        _LOG_GUARD.watch(self)

    def http_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client`` / ``httpx.AsyncClient``."""
        return {
            "base_url": self.config.base_url,
            "auth": _ApiKeyAuth(self.config.api_key),
            "headers": {
                "user-agent": USER_AGENT,
                "accept": "application/json",
                "commet-version": self.config.api_version,
            },
            "timeout": self.config.timeout,
            "follow_redirects": False,
        }

    def body_reader(self, call: Call[Any], status: int, headers: httpx.Headers) -> BodyReader:
        """A size-capped collector for this answer's body."""
        return BodyReader(self, call, status, headers)

    def retry_delay(self, attempt: int, retry_after: str | None = None) -> float:
        """How long to wait before retry number ``attempt + 1``.

        A positive ``Retry-After`` wins (capped at ``max_retry_after``); otherwise
        exponential backoff with jitter.
        """
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            return min(hinted, self.config.max_retry_after)
        return backoff_delay(attempt, self.config.backoff_base, self.config.max_backoff)

    def on_answer(self, call: Call[T], answer: Answer, attempt: int) -> ApiResponse[T] | RetryIn:
        """Read an answer: the typed result, a retry verdict, or raise ``CommetAPIError``."""
        status, headers = answer.status, answer.headers
        logger.debug("%s -> %d (attempt %d)", call.label, status, attempt + 1)
        self._notice_deprecation(call, headers)
        if attempt < self.config.retries and self._retryable(status, headers):
            delay = self.retry_delay(attempt, headers.get("retry-after"))
            logger.info(
                "Commet API answered %d to %s; retry %d/%d in %.2fs",
                status,
                call.label,
                attempt + 1,
                self.config.retries,
                delay,
            )
            return RetryIn(delay)
        request_id = self._redact(headers.get("x-request-id")) or None
        payload = _decode_json(answer.content)
        if call.nullable and _means_nothing(status, payload, answer.content):
            return ApiResponse(success=True, data=cast(T, None), request_id=request_id)
        if not 200 <= status < 300:
            raise self._api_error(status, payload, request_id)
        if payload is _NOT_JSON:
            raise CommetAPIError(
                status,
                "invalid_response",
                f"the Commet API answered {call.label} with a body that is not JSON",
                type="api_error",
                request_id=request_id,
            )
        code = message = None
        if _is_envelope(payload):
            if payload["success"] is not True:
                raise self._api_error(status, payload, request_id)
            code = self._redact(_optional_str(payload.get("code")))
            message = self._redact(_optional_str(payload.get("message")))
            payload = payload.get("data")
        try:
            data = call.read(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise CommetAPIError(
                status,
                "invalid_response",
                self._redact(f"unexpected answer to {call.label}: {exc}"),
                type="api_error",
                request_id=request_id,
            ) from None
        return ApiResponse(
            success=True, data=data, code=code, message=message, request_id=request_id
        )

    def on_transport_error(
        self, call: Call[Any], exc: httpx.TransportError, attempt: int
    ) -> RetryIn:
        """A request got no answer: a retry verdict, or raise ``CommetConnectionError``."""
        if isinstance(exc, _RETRYABLE_ERRORS) and attempt < self.config.retries:
            delay = self.retry_delay(attempt)
            logger.info(
                "%s failed (%s); retry %d/%d in %.2fs",
                call.label,
                type(exc).__name__,
                attempt + 1,
                self.config.retries,
                delay,
            )
            return RetryIn(delay)
        tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
        where = f"the Commet API at {self.config.base_url}"
        if isinstance(exc, httpx.TimeoutException):
            raise CommetTimeoutError(
                f"{where} did not answer {call.label} within {self.config.timeout}s ({tries})"
            ) from exc
        reason = self._redact(str(exc)) or type(exc).__name__
        raise CommetConnectionError(
            f"could not reach {where} for {call.label} ({tries}): {reason}"
        ) from exc

    # ---------------------------------------------------------------- retries

    @staticmethod
    def _retryable(status: int, headers: httpx.Headers) -> bool:
        if status not in RETRY_STATUSES:
            return False
        if status == 429:
            # A 429 without Retry-After did not come from the rate limiter: never retried.
            return bool(headers.get("retry-after", "").strip())
        return True

    # ---------------------------------------------------------------- deprecation

    def _notice_deprecation(self, call: Call[Any], headers: httpx.Headers) -> None:
        if "deprecation" not in headers and "sunset" not in headers:
            return
        if call.path in self._deprecated_paths:
            return
        self._deprecated_paths.add(call.path)
        successor = _successor(headers)
        sunset = headers.get("sunset")
        text = self._redact(
            f"the Commet API marks {call.label} as deprecated"
            + (f" (sunset {sunset.strip()})" if sunset else "")
            + (f"; its successor is {successor}" if successor else "")
        )
        logger.warning("%s", text)
        warnings.warn(text, DeprecationWarning, stacklevel=2)

    # ---------------------------------------------------------------- errors

    def _api_error(self, status: int, payload: Any, request_id: str | None) -> CommetAPIError:
        fields: dict[str, Any] = {}
        if isinstance(payload, dict):
            nested = payload.get("error")
            if isinstance(nested, dict):
                fields = dict(nested)
            else:
                fields = dict(payload)
                if isinstance(nested, str):
                    fields.setdefault("message", nested)
        code = self._redact(_optional_str(fields.get("code"))) or _DEFAULT_CODES.get(
            status, "server_error" if status >= 500 else "http_error"
        )
        details = self._redact(fields.get("details"))
        message = self._redact(_optional_str(fields.get("message")) or "")
        extra: dict[str, Any] = {
            "type": self._redact(_optional_str(fields.get("type"))),
            "param": self._redact(_optional_str(fields.get("param"))),
            "doc_url": self._redact(_optional_str(fields.get("doc_url") or fields.get("docUrl"))),
            "request_id": request_id,
        }
        if code == "validation_error":
            errors = field_errors(details)
            if not errors and extra["param"]:
                errors = {extra["param"]: [message or "invalid"]}
            if not message:
                message = "; ".join(f"{k or 'request'}: {', '.join(v)}" for k, v in errors.items())
            return CommetValidationError(
                status, code, message or "the request is invalid", details, errors, **extra
            )
        if not message:
            message = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()
        return CommetAPIError(status, code, message, details, **extra)

    def _redact(self, value: Any) -> Any:
        """Strip the API key from anything the server echoed back."""
        key = self.config.api_key
        if isinstance(value, str):
            for form in {key, quote(key, safe="")}:
                value = value.replace(form, "[redacted]")
            return value
        if isinstance(value, list):
            return [self._redact(v) for v in value]
        if isinstance(value, dict):
            return {self._redact(k): self._redact(v) for k, v in value.items()}
        return value


def field_errors(details: Any) -> dict[str, list[str]]:
    """``details`` of a validation error as ``{field: [messages]}``.

    Reads ``[{"field", "message"}]`` (the documented shape), zod-style ``path`` lists
    and ``{field: message | [messages]}`` maps.
    """
    errors: dict[str, list[str]] = {}
    if isinstance(details, dict):
        items = [(k, m) for k, v in details.items() for m in (v if isinstance(v, list) else [v])]
    elif isinstance(details, list):
        items = []
        for entry in details:
            if isinstance(entry, dict):
                where = entry.get("field", entry.get("path", ""))
                if isinstance(where, list):
                    where = ".".join(str(p) for p in where)
                items.append((where, entry.get("message", "invalid")))
            else:
                items.append(("", entry))
    else:
        return errors
    for where, message in items:
        errors.setdefault(str(where) if where is not None else "", []).append(str(message))
    return errors


_NOT_JSON: Any = object()


def _decode_json(content: bytes) -> Any:
    if not content.strip():
        return None
    try:
        return msgspec.json.decode(content)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return _NOT_JSON


def _is_envelope(payload: Any) -> bool:
    return (
        isinstance(payload, dict) and isinstance(payload.get("success"), bool) and "data" in payload
    ) or (isinstance(payload, dict) and payload.get("success") is False)


def _means_nothing(status: int, payload: Any, content: bytes) -> bool:
    if 200 <= status < 300:
        if payload is None:
            return True
        return _is_envelope(payload) and payload.get("success") is True and payload["data"] is None
    if status == 404 and isinstance(payload, dict):
        error = payload.get("error")
        code = error.get("code") if isinstance(error, dict) else payload.get("code")
        return code == "no_active_subscription"
    return False


def _successor(headers: httpx.Headers) -> str | None:
    link = headers.get("link")
    if not link:
        return None
    fallback = None
    for part in link.split(","):
        match = re.match(r"\s*<([^>]*)>(.*)", part)
        if not match:
            continue
        target, params = match.group(1).strip(), match.group(2).lower()
        if "successor-version" in params or "alternate" in params:
            return target
        fallback = fallback or target
    return fallback


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
