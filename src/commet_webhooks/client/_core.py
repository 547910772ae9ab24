"""The request core shared by :class:`Commet` and :class:`AsyncCommet`.

Everything that does not touch a socket lives here: validating the configuration,
describing each call, reading the ``{"success", "data", ...}`` wrapper, mapping
errors and deciding whether and when to retry. The sync and async clients only
send the request, sleep and loop.
"""

from __future__ import annotations

import logging
import math
import platform
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generic, NamedTuple, TypeVar
from urllib.parse import quote

try:
    import httpx
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.client", "client", exc) from exc
import msgspec

from .. import __version__
from ._errors import (
    CommetAPIError,
    CommetConnectionError,
    CommetTimeoutError,
    CommetValidationError,
)
from ._models import ActiveSubscription, FeatureAccess, FeatureCheck

__all__ = [
    "ENVIRONMENTS",
    "RETRY_STATUSES",
    "ApiResponse",
    "Call",
    "ClientConfig",
    "RequestCore",
    "RetryIn",
    "backoff_delay",
    "parse_retry_after",
]

logger = logging.getLogger("commet_webhooks.client")

T = TypeVar("T")

#: Where each environment lives; request paths are always ``/api/...`` below it.
ENVIRONMENTS: dict[str, str] = {
    "production": "https://commet.co",
    "sandbox": "https://sandbox.commet.co",
}

#: Answers worth another attempt: the request may well succeed later.
RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})

# Failures where no answer arrived; a GET is safe to send again.
_RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    408: "request_timeout",
    409: "conflict",
    429: "rate_limited",
}

USER_AGENT = (
    f"commet-webhooks/{__version__} (python {platform.python_version()}; httpx {httpx.__version__})"
)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ApiResponse(Generic[T]):
    """The state API's wrapper: ``success``, the typed ``data`` and optional notes.

    Only successful answers become an ``ApiResponse`` (``success`` is always True);
    every unsuccessful one raises :class:`CommetAPIError`. ``data`` is None when the
    API has nothing to return, e.g. a customer without an active subscription.
    """

    success: bool
    data: T
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One state API request (always a ``GET``) and the type its ``data`` decodes to."""

    path: str
    params: dict[str, str]
    data_type: Any

    def read(self, data: Any) -> T:
        """Convert the wrapper's ``data`` to the typed model (raises msgspec.ValidationError)."""
        result: T = msgspec.convert(data, self.data_type)
        return result


def active_subscription_call(customer_id: str) -> Call[ActiveSubscription | None]:
    """``GET /api/subscriptions/active?customerId=ID``."""
    return Call(
        "/api/subscriptions/active",
        {"customerId": _required("customer_id", customer_id)},
        ActiveSubscription | None,
    )


def feature_call(code: str, customer_id: str) -> Call[FeatureAccess]:
    """``GET /api/features/{code}?customerId=ID``: the full feature access."""
    return Call(
        _feature_path(code), {"customerId": _required("customer_id", customer_id)}, FeatureAccess
    )


def feature_check_call(code: str, customer_id: str) -> Call[FeatureCheck]:
    """The same request as :func:`feature_call`, read as just ``allowed``."""
    return Call(
        _feature_path(code), {"customerId": _required("customer_id", customer_id)}, FeatureCheck
    )


def _feature_path(code: str) -> str:
    # The code is one path segment: "/" and friends must not change the route.
    return "/api/features/" + quote(_required("code", code), safe="")


def _required(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value


class RetryIn(NamedTuple):
    """The core's verdict "send the request again after ``seconds``"."""

    seconds: float


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
    timeout: float | None
    retries: int
    backoff_base: float
    max_backoff: float
    max_retry_after: float

    @classmethod
    def build(
        cls,
        api_key: object,
        environment: str,
        base_url: str | None,
        timeout: float | None,
        retries: int,
        backoff_base: float,
        max_backoff: float,
        max_retry_after: float,
    ) -> ClientConfig:
        """Check every setting; raise ``ValueError`` with a message that names the problem."""
        if environment not in ENVIRONMENTS:
            raise ValueError(f"environment must be 'production' or 'sandbox', not {environment!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError("retries must be an integer >= 0")
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
            base_url=_check_base_url(base_url)
            if base_url is not None
            else ENVIRONMENTS[environment],
            timeout=timeout,
            retries=retries,
            backoff_base=float(backoff_base),
            max_backoff=float(max_backoff),
            max_retry_after=float(max_retry_after),
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
    if root.endswith("/api"):
        raise ValueError(
            "base_url is the host root (e.g. 'https://commet.co'); leave out '/api', "
            "which every request path already starts with"
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
    date), or None when absent or unreadable. Past dates give 0.
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
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


# --------------------------------------------------------------------------- the core


class RequestCore:
    """Turns HTTP outcomes into results, errors or retry verdicts. Holds no socket."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config

    def http_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client`` / ``httpx.AsyncClient``."""
        return {
            "base_url": self.config.base_url,
            "auth": _ApiKeyAuth(self.config.api_key),
            "headers": {"user-agent": USER_AGENT, "accept": "application/json"},
            "timeout": self.config.timeout,
            "follow_redirects": False,
        }

    def retry_delay(self, attempt: int, retry_after: str | None = None) -> float:
        """How long to wait before retry number ``attempt + 1``.

        A ``Retry-After`` hint wins (capped at ``max_retry_after``); otherwise
        exponential backoff with jitter.
        """
        hinted = parse_retry_after(retry_after)
        if hinted is not None:
            return min(hinted, self.config.max_retry_after)
        return backoff_delay(attempt, self.config.backoff_base, self.config.max_backoff)

    def on_response(
        self, call: Call[T], response: httpx.Response, attempt: int
    ) -> ApiResponse[T] | RetryIn:
        """Read an answer: the typed result, a retry verdict, or raise ``CommetAPIError``."""
        status = response.status_code
        logger.debug("GET %s -> %d (attempt %d)", call.path, status, attempt + 1)
        if status in RETRY_STATUSES and attempt < self.config.retries:
            delay = self.retry_delay(attempt, response.headers.get("retry-after"))
            logger.info(
                "Commet API answered %d to GET %s; retry %d/%d in %.2fs",
                status,
                call.path,
                attempt + 1,
                self.config.retries,
                delay,
            )
            return RetryIn(delay)
        payload = _decode_json(response.content)
        if not 200 <= status < 300:
            raise self._api_error(status, payload)
        if not isinstance(payload, dict) or not isinstance(payload.get("success"), bool):
            raise CommetAPIError(
                status,
                "invalid_response",
                'the Commet API answered without the {"success", "data"} wrapper',
            )
        if payload["success"] is not True:
            raise self._api_error(status, payload)
        try:
            data = call.read(payload.get("data"))
        except msgspec.ValidationError as exc:
            raise CommetAPIError(
                status, "invalid_response", f"unexpected data from GET {call.path}: {exc}"
            ) from None
        return ApiResponse(
            success=True,
            data=data,
            code=_optional_str(payload.get("code")),
            message=self._redact(_optional_str(payload.get("message"))),
        )

    def on_transport_error(
        self, call: Call[Any], exc: httpx.TransportError, attempt: int
    ) -> RetryIn:
        """A request got no answer: a retry verdict, or raise ``CommetConnectionError``."""
        if isinstance(exc, _RETRYABLE_ERRORS) and attempt < self.config.retries:
            delay = self.retry_delay(attempt)
            logger.info(
                "GET %s failed (%s); retry %d/%d in %.2fs",
                call.path,
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
                f"{where} did not answer GET {call.path} within {self.config.timeout}s ({tries})"
            ) from exc
        reason = self._redact(str(exc)) or type(exc).__name__
        raise CommetConnectionError(
            f"could not reach {where} for GET {call.path} ({tries}): {reason}"
        ) from exc

    # ---------------------------------------------------------------- errors

    def _api_error(self, status: int, payload: Any) -> CommetAPIError:
        fields: dict[str, Any] = dict(payload) if isinstance(payload, dict) else {}
        nested = fields.get("error")
        if isinstance(nested, dict):
            fields.update(nested)
        elif isinstance(nested, str):
            fields.setdefault("message", nested)
        code = _optional_str(fields.get("code")) or _DEFAULT_CODES.get(
            status, "server_error" if status >= 500 else "http_error"
        )
        details = self._redact(fields.get("details"))
        message = self._redact(_optional_str(fields.get("message")) or "")
        if code == "validation_error":
            errors = field_errors(details)
            if not message:
                message = "; ".join(f"{k or 'request'}: {', '.join(v)}" for k, v in errors.items())
            return CommetValidationError(
                status, code, message or "the request is invalid", details, errors
            )
        if not message:
            message = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()
        return CommetAPIError(status, code, message, details)

    def _redact(self, value: Any) -> Any:
        """Strip the API key from anything the server echoed back."""
        key = self.config.api_key
        if isinstance(value, str):
            return value.replace(key, "[redacted]")
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


def _decode_json(content: bytes) -> Any:
    try:
        return msgspec.json.decode(content) if content else None
    except (msgspec.DecodeError, RecursionError, ValueError):
        return None


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
