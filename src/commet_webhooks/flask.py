"""Flask adapter: a ``Blueprint`` with the Commet webhook route.

>>> from commet_webhooks.flask import webhook_blueprint
>>> app.register_blueprint(webhook_blueprint(webhooks))
"""

from __future__ import annotations

try:
    from flask import Blueprint, Response, request
except ImportError as exc:  # an optional extra is not installed
    from ._optional import missing_extra

    raise missing_extra("commet_webhooks.flask", "flask", exc) from exc

from ._adapter import DEFAULT_PATH, answer, wsgi_body_reader
from .dispatch import Webhooks

__all__ = ["webhook_blueprint"]

# Every method reaches the view so that the 405 carries ``Allow: POST`` and our JSON body.
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def webhook_blueprint(
    webhooks: Webhooks, path: str = DEFAULT_PATH, name: str = "commet_webhooks"
) -> Blueprint:
    """A blueprint receiving Commet webhooks at ``path`` (synchronously, via ``handle_sync``).

    The body is read straight from ``wsgi.input`` -- never through ``request.data`` or
    ``request.form`` -- so a form or JSON content type cannot change the verified bytes.
    """
    blueprint = Blueprint(name, __name__)

    def receive_commet_webhook() -> Response:
        reply = answer(
            webhooks,
            request.method,
            request.headers.get("Content-Length"),
            dict(request.headers.items()),
            wsgi_body_reader(request.environ),
        )
        return Response(reply.body, status=reply.status, headers=dict(reply.headers))

    blueprint.add_url_rule(
        path,
        endpoint="receive",
        view_func=receive_commet_webhook,
        methods=_METHODS,
        provide_automatic_options=False,
    )
    return blueprint
