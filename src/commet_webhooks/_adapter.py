"""The steps every framework adapter shares: preflight, bounded raw-body read, handle.

An adapter supplies the method, the declared ``Content-Length``, the headers and a
way to read the body; it gets a :class:`WebhookResponse` back to translate. Bodies
are read as raw bytes and abandoned as soon as they pass ``max_body_bytes``, so an
oversized chunked upload costs at most ``max_body_bytes + 1`` bytes of memory.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Mapping
from typing import Any

from .dispatch import WebhookResponse, Webhooks

__all__ = [
    "DEFAULT_PATH",
    "answer",
    "answer_async",
    "read_body",
    "read_body_async",
    "receive",
    "receive_async",
    "wsgi_body_reader",
]

DEFAULT_PATH = "/webhooks/commet"
"""Where the routing adapters mount the endpoint unless told otherwise."""

_CHUNK = 65_536

logger = logging.getLogger("commet_webhooks")

_UNREADABLE = WebhookResponse(
    400,
    b'{"received":false,"error":"Unreadable request body"}',
    {"content-type": "application/json"},
)
"""The answer when the server cannot deliver the body (malformed chunked framing, client gone)."""

BlockingRead = Callable[[int], bytes]
"""``read(n)``: up to ``n`` bytes, ``b""`` at the end."""


def receive(
    webhooks: Webhooks, method: str, content_length: str | None, read: BlockingRead
) -> bytes | WebhookResponse:
    """Preflight, then a bounded read: the raw body, or the answer to send without handling."""
    early = webhooks.preflight(method, content_length)
    if early is not None:
        return early
    try:
        body = read_body(read, webhooks.max_body_bytes, _declared(content_length))
    except OSError as exc:  # what WSGI servers raise for a broken chunked body
        return _unreadable(exc)
    return webhooks.too_large() if body is None else body


async def receive_async(
    webhooks: Webhooks,
    method: str,
    content_length: str | None,
    chunks: Callable[[], AsyncIterable[bytes]],
) -> bytes | WebhookResponse:
    """:func:`receive` over an async stream of chunks (``chunks()`` is called only to read)."""
    early = webhooks.preflight(method, content_length)
    if early is not None:
        return early
    try:
        body = await read_body_async(chunks(), webhooks.max_body_bytes)
    except OSError as exc:  # the connection broke mid-body
        return _unreadable(exc)
    return webhooks.too_large() if body is None else body


def _unreadable(exc: OSError) -> WebhookResponse:
    logger.warning("rejected webhook: unreadable body (%s)", type(exc).__name__)
    return _UNREADABLE


def answer(
    webhooks: Webhooks,
    method: str,
    content_length: str | None,
    headers: Mapping[str, str],
    read: BlockingRead,
) -> WebhookResponse:
    """The answer to one request, from synchronous code (``handle_sync``)."""
    body = receive(webhooks, method, content_length, read)
    return body if isinstance(body, WebhookResponse) else webhooks.handle_sync(body, headers)


async def answer_async(
    webhooks: Webhooks,
    method: str,
    content_length: str | None,
    headers: Mapping[str, str],
    chunks: Callable[[], AsyncIterable[bytes]],
) -> WebhookResponse:
    """The answer to one request, from async code (``handle``)."""
    body = await receive_async(webhooks, method, content_length, chunks)
    return body if isinstance(body, WebhookResponse) else await webhooks.handle(body, headers)


def read_body(read: BlockingRead, limit: int, length: int | None = None) -> bytes | None:
    """Read until EOF (or ``length`` bytes); None once past ``limit``.

    Each call asks for no more than is still allowed, so a stream that blocks until it
    can fill a read (a de-chunking WSGI input) never waits for bytes beyond the limit.
    """
    wanted = limit + 1 if length is None else min(length, limit + 1)
    parts: list[bytes] = []
    total = 0
    while total < wanted:
        chunk = read(min(_CHUNK, wanted - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return None if total > limit else b"".join(parts)


async def read_body_async(chunks: AsyncIterable[bytes], limit: int) -> bytes | None:
    """Collect an async stream of body chunks; None as soon as it passes ``limit``."""
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def wsgi_body_reader(environ: Mapping[str, Any]) -> BlockingRead:
    """``read(n)`` over a WSGI request body, safe to call until it returns ``b""``.

    With a ``Content-Length`` that many bytes are read. Without one, the input is
    read to EOF only when the server marks it terminated (chunked requests under
    gunicorn, werkzeug and others); PEP 3333 forbids reading it otherwise, so the
    body is empty.
    """
    stream = environ.get("wsgi.input")
    if stream is None or (
        _declared(environ.get("CONTENT_LENGTH")) is None
        and not environ.get("wsgi.input_terminated")
    ):
        return _empty
    read: BlockingRead = stream.read
    return read


def _empty(size: int) -> bytes:
    return b""


def _declared(value: str | None) -> int | None:
    """A declared ``Content-Length`` as an int, or None when absent or malformed."""
    try:
        length = int(value) if value else None
    except ValueError:
        return None
    return None if length is None or length < 0 else length
