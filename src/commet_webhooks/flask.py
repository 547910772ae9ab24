"""Flask adapter: a ``Blueprint`` with the Commet webhook route.

>>> from commet_webhooks.flask import webhook_blueprint
>>> app.register_blueprint(webhook_blueprint(webhooks))

By default the webhook path is answered before Flask's request dispatch: when the
blueprint is registered it wraps ``app.wsgi_app`` with a check of ``PATH_INFO``, and
a request to exactly that path goes straight to :class:`commet_webhooks.wsgi.WebhookApp`
-- no request context, no ``before_request``/``after_request``/``teardown_request``
hooks, no Flask error handlers. Every other request goes through Flask untouched.
Pass ``flask_hooks=True`` to have the webhook dispatched by Flask like any view
(slower; the answers are the same). The URL rule is registered either way, so
``url_for("commet_webhooks.receive")`` works.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

try:
    from flask import Blueprint, Flask, Response, request
    from flask.blueprints import BlueprintSetupState
except ImportError as exc:  # an optional extra is not installed
    from ._optional import missing_extra

    raise missing_extra("commet_webhooks.flask", "flask", exc) from exc

from ._adapter import DEFAULT_PATH, EnvironHeaders, answer, wsgi_body_reader
from .dispatch import Webhooks
from .wsgi import WebhookApp

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["webhook_blueprint"]

# Every method reaches the view so that the 405 carries ``Allow: POST`` and our JSON body.
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def webhook_blueprint(
    webhooks: Webhooks,
    path: str = DEFAULT_PATH,
    name: str = "commet_webhooks",
    *,
    flask_hooks: bool = False,
) -> Blueprint:
    """A blueprint receiving Commet webhooks at ``path`` (synchronously, via ``handle_sync``).

    The body is read straight from ``wsgi.input`` -- never through ``request.data`` or
    ``request.form`` -- so a form or JSON content type cannot change the verified bytes.
    ``flask_hooks=False`` (the default) answers the exact path before Flask's dispatch
    (see the module docs); with a ``subdomain``, host matching or a variable part in
    the rule, Flask dispatches it whatever the setting.
    """
    blueprint = Blueprint(name, __name__)

    def receive_commet_webhook() -> Response:
        # Straight from the environ: no Request.headers, no per-request header dict.
        environ = request.environ
        reply = answer(
            webhooks,
            environ.get("REQUEST_METHOD", ""),
            environ.get("CONTENT_LENGTH"),
            EnvironHeaders(environ),
            wsgi_body_reader(environ),
        )
        return Response(reply.body, reply.status, list(reply.headers.items()))

    blueprint.add_url_rule(
        path,
        endpoint="receive",
        view_func=receive_commet_webhook,
        methods=_METHODS,
        provide_automatic_options=False,
    )
    if not flask_hooks:
        webhook_app = WebhookApp(webhooks)

        def answer_before_dispatch(state: BlueprintSetupState) -> None:
            rule = path
            if state.url_prefix is not None:
                rule = "/".join((state.url_prefix.rstrip("/"), path.lstrip("/")))
            app = cast(Flask, state.app)
            if state.subdomain or app.url_map.host_matching or "<" in rule:
                return  # Flask's routing decides: leave it to the view
            app.wsgi_app = _WebhookPath(  # type: ignore[method-assign]  # Flask's middleware hook
                app.wsgi_app, rule.encode("utf-8").decode("latin-1"), webhook_app
            )

        blueprint.record(answer_before_dispatch)
    return blueprint


class _WebhookPath:
    """WSGI middleware: ``PATH_INFO == path`` goes to the webhook app, the rest to Flask."""

    __slots__ = ("app", "path", "webhook_app")

    def __init__(self, app: WSGIApplication, path: str, webhook_app: WebhookApp) -> None:
        self.app = app
        self.path = path
        self.webhook_app = webhook_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == self.path:
            return self.webhook_app(environ, start_response)
        return self.app(environ, start_response)

    def __getattr__(self, name: str) -> Any:  # other middleware's attributes stay reachable
        return getattr(self.app, name)
