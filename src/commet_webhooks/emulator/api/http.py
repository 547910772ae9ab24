"""What every API route shares: reading bodies and queries, and writing answers."""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ApiError, validation_error

__all__ = [
    "MAX_BODY_BYTES",
    "cursor_of",
    "is_loopback_host",
    "json_response",
    "next_cursor",
    "ok",
    "query_int",
    "read_body",
    "required_query",
]

MAX_BODY_BYTES = 1_048_576
T = TypeVar("T")


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(msgspec.json.encode(payload), status, headers, media_type="application/json")


def ok(data: Any, status: int = 200, **extra: Any) -> Response:
    """``{"success": true, "data": ...}`` (structs are encoded as they are)."""
    return json_response({"success": True, "data": data, **extra}, status)


def _field_of(message: str) -> tuple[str, str]:
    """Split a msgspec validation message into (field, message)."""
    text, _, path = message.partition(" - at `")
    field = path.rstrip("`").removeprefix("$").lstrip(".") or "body"
    missing = re.match(r"Object missing required field `(.+)`", text)
    if missing:
        field = f"{field}.{missing.group(1)}" if field != "body" else missing.group(1)
        text = "is required"
    return field, text


async def read_raw(request: Request) -> bytes:
    """The body, streamed and refused (413) as soon as it passes :data:`MAX_BODY_BYTES`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"body is larger than {MAX_BODY_BYTES} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, "payload_too_large", f"body is larger than {MAX_BODY_BYTES} bytes")
    return bytes(raw)


async def read_body(request: Request, kind: type[T]) -> T:
    """The JSON body decoded into ``kind``; a 400 naming the field when it does not fit."""
    cached = getattr(request.state, "raw_body", None)
    raw = cached if cached is not None else await read_raw(request)
    try:
        return msgspec.json.decode(raw if raw.strip() else b"{}", type=kind)
    except msgspec.ValidationError as exc:
        field, message = _field_of(str(exc))
        raise validation_error(field, message) from None
    except msgspec.DecodeError:
        raise ApiError(
            400,
            "invalid_json",
            "body: is not valid JSON",
            [{"field": "body", "message": "is not valid JSON"}],
            param="body",
        ) from None


def query_int(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation_error(name, "must be an integer") from None
    if not 1 <= value <= maximum:
        raise validation_error(name, f"must be between 1 and {maximum}")
    return value


def required_query(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise validation_error(name, "query parameter is required")
    return value


def next_cursor(seq: int) -> str:
    """An opaque cursor for "after the item with this position"."""
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def cursor_of(request: Request) -> int:
    """The position a ``cursor`` query parameter stands for (0 without one)."""
    raw = request.query_params.get("cursor") or request.query_params.get("startingAfter")
    if not raw:
        return 0
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        if text.startswith("s") and text[1:].isdigit():
            return int(text[1:])
    except (ValueError, UnicodeDecodeError):
        pass
    raise validation_error("cursor", "is not a cursor this API returned")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
