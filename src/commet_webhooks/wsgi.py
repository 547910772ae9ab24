"""A bare WSGI app that receives Commet webhooks; serve it with any WSGI server.

>>> from commet_webhooks.wsgi import WebhookApp
>>> application = WebhookApp(webhooks)         # gunicorn module:application
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING

from ._adapter import EnvironHeaders, answer, wsgi_body_reader
from .dispatch import WebhookResponse, Webhooks

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["WebhookApp"]


class WebhookApp:
    """WSGI app: POST a Commet webhook to it, get Commet's expected answer back.

    Handlers run through :meth:`Webhooks.handle_sync` in the server's worker thread.
    Mount it at any path (for example with werkzeug's ``DispatcherMiddleware``); the
    path is not checked.
    """

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks

    def __repr__(self) -> str:
        return f"WebhookApp({self.webhooks!r})"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        answer = self.respond(environ)
        body = answer.body
        start_response(
            _status_line(answer.status),
            [*_header_list(answer.headers), ("Content-Length", str(len(body)))],
        )
        return [body]

    def respond(self, environ: WSGIEnvironment) -> WebhookResponse:
        """Turn one WSGI request into the webhook answer."""
        return answer(
            self.webhooks,
            environ.get("REQUEST_METHOD", ""),
            environ.get("CONTENT_LENGTH"),
            EnvironHeaders(environ),
            wsgi_body_reader(environ),
        )


# The fixed answers share their headers mapping: keep the list form by its identity
# (the entry keeps the mapping alive, so the id is not reused meanwhile).
_LISTED: dict[int, tuple[Mapping[str, str], list[tuple[str, str]]]] = {}
_LISTED_MAX = 256


def _header_list(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    cached = _LISTED.get(id(headers))
    if cached is not None and cached[0] is headers:
        return cached[1]
    listed = list(headers.items())
    if len(_LISTED) >= _LISTED_MAX:
        _LISTED.clear()
    _LISTED[id(headers)] = (headers, listed)
    return listed


@functools.lru_cache(maxsize=64)
def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"
