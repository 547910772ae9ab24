"""What is particular to each framework: OpenAPI, routing names, Django's plugin, imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from commet_webhooks import SubscriptionActivated, Webhooks
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.testing import sample_event, signed_request

FRAMEWORKS = ["fastapi", "starlette", "flask", "django", "aiohttp", "werkzeug", "uvicorn"]


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    return {name.split(".")[0] for name in out}


def test_importing_the_core_or_the_bare_adapters_imports_no_framework():
    for statement in (
        "import commet_webhooks",
        "import commet_webhooks.asgi",
        "import commet_webhooks.wsgi",
    ):
        assert not _imported_after(statement) & set(FRAMEWORKS), statement


def test_fastapi_route_is_documented_without_a_body_model():
    from fastapi import FastAPI

    from commet_webhooks.fastapi import webhook_router

    app = FastAPI()
    app.include_router(webhook_router(Webhooks("whsec_x")))
    schema = app.openapi()

    operations = schema["paths"]["/webhooks/commet"]
    assert list(operations) == ["post"]  # other methods are routed, not documented
    post = operations["post"]
    assert post["summary"] == "Receive a Commet webhook"
    body = post["requestBody"]
    assert body["required"] is True
    assert all(name in body["description"] for name in EVENT_TYPES)
    assert "application/json" in body["content"]
    signature = next(p for p in post["parameters"] if p["name"] == "X-Commet-Signature")
    assert signature["in"] == "header" and signature["required"] is True
    assert {"200", "400", "403", "413"} <= set(post["responses"])
    # No pydantic model was generated for the body: FastAPI does not parse it.
    assert "schemas" not in schema.get("components", {})


def test_starlette_route_is_named_and_answers_every_method():
    from starlette.applications import Starlette

    from commet_webhooks.starlette import webhook_route

    route = webhook_route(Webhooks("whsec_x"), "/hooks/commet", name="billing")
    app = Starlette(routes=[route])
    assert app.url_path_for("billing") == "/hooks/commet"
    assert route.methods is None


def test_flask_blueprint_takes_its_name_and_path():
    from flask import Flask, url_for

    from commet_webhooks.flask import webhook_blueprint

    app = Flask(__name__)
    app.register_blueprint(webhook_blueprint(Webhooks("whsec_x"), "/in", name="billing"))
    with app.test_request_context():
        assert url_for("billing.receive") == "/in"


def test_django_signals_one_per_registered_event_type_plus_a_catch_all():
    import django.dispatch

    from commet_webhooks.django import signals

    assert set(signals.SIGNALS) == set(EVENT_TYPES)
    assert len({id(s) for s in signals.SIGNALS.values()}) == len(EVENT_TYPES)
    for name, spec in EVENT_TYPES.items():
        attribute = spec.handler_keyword.removeprefix("on_")
        assert getattr(signals, attribute) is signals.SIGNALS[name] is signals.signal_for(name)
        assert attribute in dir(signals)
    assert isinstance(signals.webhook_received, django.dispatch.Signal)
    assert signals.webhook_received not in signals.SIGNALS.values()
    assert signals.signal_for("loyalty.points_awarded") is None
    with pytest.raises(AttributeError):
        signals.no_such_signal  # noqa: B018


def test_django_system_check_reports_a_missing_secret(django_configured):
    from django.test import override_settings

    from commet_webhooks.django.apps import check_settings

    assert check_settings() == []
    with override_settings(COMMET_WEBHOOK_SECRET=""):
        assert [e.id for e in check_settings()] == ["commet_webhooks.E001"]
    with override_settings(COMMET_WEBHOOK_OPTIONS=["not", "a", "dict"]):
        assert [e.id for e in check_settings()] == ["commet_webhooks.E003"]


def test_django_plugin_without_a_secret_says_what_to_set(django_configured):
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from commet_webhooks.django import webhooks_from_settings

    with override_settings(COMMET_WEBHOOK_SECRET=None), pytest.raises(ImproperlyConfigured) as info:
        webhooks_from_settings()
    assert "COMMET_WEBHOOK_SECRET" in str(info.value)
    with (
        override_settings(COMMET_WEBHOOK_OPTIONS={"on_subscription_activatd": print}),
        pytest.raises(ImproperlyConfigured, match="on_subscription_activatd"),
    ):
        webhooks_from_settings()


def test_django_plugin_options_and_a_failing_receiver(django_configured):
    # Django's test client, through the plugin URLconf: a receiver that raises fails
    # the delivery with 500 when the settings opt into retries.
    from django.test import Client, override_settings
    from django.urls import include, path

    from commet_webhooks.django import signals

    secret = "whsec_django_plugin_options"
    seen: list[object] = []

    def failing(sender: type, event: object, **kwargs: object) -> None:
        seen.append(event)
        raise RuntimeError("mail server down")

    urls = type("urls", (), {"urlpatterns": [path("c/", include("commet_webhooks.django.urls"))]})
    signals.subscription_activated.connect(failing, weak=False)
    try:
        with override_settings(
            ROOT_URLCONF=urls,
            COMMET_WEBHOOK_SECRET=secret,
            COMMET_WEBHOOK_OPTIONS={"retry_on_handler_error": True},
        ):
            body, headers = signed_request(sample_event("subscription.activated"), secret)
            response = Client(enforce_csrf_checks=True).post(
                "/c/", body, content_type="application/json", headers=headers
            )
    finally:
        signals.subscription_activated.disconnect(failing)

    assert response.status_code == 500
    assert response.json()["received"] is False
    assert [type(e) for e in seen] == [SubscriptionActivated]


def test_flask_blueprint_answers_before_flask_dispatch_unless_asked_not_to():
    from flask import Flask, url_for

    from commet_webhooks.flask import webhook_blueprint

    secret = "whsec_flask_dispatch"

    def app_with(flask_hooks: bool) -> tuple[Flask, list[str]]:
        seen: list[str] = []
        app = Flask(__name__)

        @app.before_request
        def before() -> None:
            seen.append("before")

        @app.after_request
        def after(response):
            seen.append("after")
            return response

        app.add_url_rule("/other", "other", lambda: "other")
        blueprint = webhook_blueprint(Webhooks(secret), flask_hooks=flask_hooks)
        app.register_blueprint(blueprint, url_prefix="/in")
        return app, seen

    body, headers = signed_request(sample_event("payment.received"), secret)
    for flask_hooks, expected in ((False, []), (True, ["before", "after"])):
        app, seen = app_with(flask_hooks)
        client = app.test_client()
        response = client.post("/in/webhooks/commet", data=body, headers=headers)
        assert response.status_code == 200 and response.json == {"received": True}
        assert seen == expected
        assert client.get("/other").data == b"other"  # the rest of the app is Flask's
        assert seen == [*expected, "before", "after"]
        with app.test_request_context():
            assert url_for("commet_webhooks.receive") == "/in/webhooks/commet"


def test_fastapi_requests_skip_dependency_injection_but_the_schema_stays(asgi_server):
    import httpx
    from fastapi import Depends, FastAPI, HTTPException

    from commet_webhooks.fastapi import webhook_router

    def deny() -> None:
        raise HTTPException(401)

    app = FastAPI()
    router = webhook_router(Webhooks("whsec_x"))
    app.include_router(router, prefix="/api", dependencies=[Depends(deny)])

    with asgi_server(app, "/api/webhooks/commet") as url, httpx.Client(timeout=30) as client:
        # The webhook's own 403 (no signature), not the dependency's 401: no DI on the way.
        assert client.post(url, content=b"{}").status_code == 403
        assert client.get(url).status_code == 405
    assert list(app.openapi()["paths"]["/api/webhooks/commet"]) == ["post"]
    assert app.url_path_for("commet_webhooks") == "/api/webhooks/commet"


def test_body_limit_caps_only_its_paths_under_uvicorn(asgi_server):
    import httpx

    from commet_webhooks.asgi import BodyLimit

    seen: list[int] = []

    async def echo(scope, receive, send):
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        seen.append(len(body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(body)})

    def chunks(data: bytes):
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    app = BodyLimit(echo, ["/hook/"], max_body_bytes=4096)
    with asgi_server(app, "") as base, httpx.Client(base_url=base, timeout=30) as client:
        assert client.post("/hook", content=b"x" * 4096).text == "4096"  # slash ignored
        assert client.post("/hook/", content=chunks(b"x" * 4096)).text == "4096"
        too_big = client.post("/hook/", content=chunks(b"x" * 9000))
        assert too_big.status_code == 413
        assert too_big.json() == {"received": False, "error": "Payload too large"}
        assert client.post("/hook/", content=b"x" * 4097).status_code == 413
        assert client.post("/other", content=b"x" * 9000).text == "9000"  # not capped
    assert seen == [4096, 4096, 9000]
