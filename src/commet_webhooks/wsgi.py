"""A bare WSGI app that receives Commet webhooks; serve it with any WSGI server.

>>> from commet_webhooks.wsgi import WebhookApp
>>> application = WebhookApp(webhooks)         # gunicorn module:application
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ._adapter import answer, wsgi_body_reader
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
        headers = [*answer.headers.items(), ("Content-Length", str(len(answer.body)))]
        start_response(_status_line(answer.status), headers)
        return [answer.body]

    def respond(self, environ: WSGIEnvironment) -> WebhookResponse:
        """Turn one WSGI request into the webhook answer."""
        return answer(
            self.webhooks,
            environ.get("REQUEST_METHOD", ""),
            environ.get("CONTENT_LENGTH"),
            _headers(environ),
            wsgi_body_reader(environ),
        )


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """Request headers from a WSGI environ, with lower-case dashed names."""
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"
