"""The steps every framework adapter shares: preflight, bounded raw-body read, handle.

An adapter supplies the method, the declared ``Content-Length``, the headers and a
way to read the body; it gets a :class:`WebhookResponse` back to translate. Bodies
are read as raw bytes and abandoned as soon as they pass ``max_body_bytes``, so an
oversized chunked upload costs at most ``max_body_bytes + 1`` bytes of memory.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Iterator, Mapping
from typing import Any

from . import _responses as answers
from .dispatch import SIGNATURE_HEADER, WebhookResponse, Webhooks

__all__ = [
    "DEFAULT_PATH",
    "EnvironHeaders",
    "answer",
    "answer_async",
    "read_body",
    "read_body_async",
    "receive",
    "receive_async",
    "repeated_signature",
    "signature_repeated",
    "wsgi_body_reader",
]

DEFAULT_PATH = "/webhooks/commet"
"""Where the routing adapters mount the endpoint unless told otherwise."""

_CHUNK = 65_536

logger = logging.getLogger("commet_webhooks")


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
    except Exception as exc:  # whatever the server's input stream raises
        # A WSGI server reports a broken body from ``read``: an ``OSError`` for a
        # dropped connection, its own parse error for malformed chunked framing
        # (gunicorn's ``InvalidChunkSize`` is no ``OSError``). Either way the body
        # cannot be read: a 400, never a 500 with a traceback.
        return _unreadable(webhooks, exc)
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
        return _unreadable(webhooks, exc)
    return webhooks.too_large() if body is None else body


def _unreadable(webhooks: Webhooks, exc: Exception) -> WebhookResponse:
    logger.warning("rejected webhook: unreadable body (%s)", type(exc).__name__)
    return webhooks.early(answers.UNREADABLE)


def repeated_signature(webhooks: Webhooks) -> WebhookResponse:
    """The 403 for a request with more than one signature header, whatever the server.

    Servers disagree on repeated headers (ASGI servers pass every line, aiohttp's
    ``get`` gives the first, WSGI servers and Django join them with commas), so each
    adapter detects the repetition and refuses it the same way, before verification.
    """
    logger.warning("rejected webhook: more than one %s header", SIGNATURE_HEADER)
    return webhooks.early(answers.INVALID_SIGNATURE)  # the core's 403, whatever the server kept


def signature_repeated(value: str | None) -> bool:
    """Whether a joined header value holds more than one signature (``"a,b"``).

    A signature is hex, so a comma can only come from a server joining repeated lines.
    """
    return value is not None and "," in value


def answer(
    webhooks: Webhooks,
    method: str,
    content_length: str | None,
    headers: Mapping[str, str],
    read: BlockingRead,
) -> WebhookResponse:
    """The answer to one request, from synchronous code (``handle_sync``).

    ``headers`` come joined, one value per name (WSGI, Django).
    """
    if signature_repeated(headers.get("x-commet-signature")):
        return repeated_signature(webhooks)
    body = receive(webhooks, method, content_length, read)
    return body if isinstance(body, WebhookResponse) else webhooks.handle_sync(body, headers)


async def answer_async(
    webhooks: Webhooks,
    method: str,
    content_length: str | None,
    headers: Mapping[str, str],
    chunks: Callable[[], AsyncIterable[bytes]],
) -> WebhookResponse:
    """The answer to one request, from async code (``handle``).

    The adapter has already refused repeated signature headers (see
    :func:`repeated_signature`); ``headers`` hold one value per name.
    """
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


class EnvironHeaders(Mapping[str, str]):
    """The request headers of a WSGI environ, read on demand (no per-request dict).

    ``headers["x-commet-signature"]`` is ``environ["HTTP_X_COMMET_SIGNATURE"]``; names
    are matched case-insensitively and listed lower-case with dashes.
    """

    __slots__ = ("_environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return str(value)

    def get(self, name: str, default: Any = None) -> Any:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = self._environ.get(key)
        return default if value is None else value

    def __iter__(self) -> Iterator[str]:
        for key, value in self._environ.items():
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").lower()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                yield key.replace("_", "-").lower()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"EnvironHeaders({sorted(self)!r})"


def _empty(size: int) -> bytes:
    return b""


def _declared(value: str | None) -> int | None:
    """A declared ``Content-Length`` as an int, or None when absent or malformed."""
    try:
        length = int(value) if value else None
    except ValueError:
        return None
    return None if length is None or length < 0 else length
