"""The pytest plugin's fixtures, used the way a project's own tests would use them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from commet_webhooks import SubscriptionActivated, Webhooks, verify
from commet_webhooks.starlette import webhook_route
from commet_webhooks.wsgi import WebhookApp

SECRET = "whsec_conformance_3c1f9a"


def test_signed_request_builds_authentic_forged_and_unsigned_deliveries(
    commet_signed_request: Any, commet_webhook_secret: str
) -> None:
    body, headers = commet_signed_request("payment.failed", failure_code="expired_card")
    assert verify(body, headers["X-Commet-Signature"], commet_webhook_secret)
    assert headers["X-Commet-Event"] == "payment.failed"
    assert b'"failureCode":"expired_card"' in body

    forged, forged_headers = commet_signed_request.forged("payment.failed")
    assert not verify(forged, forged_headers["X-Commet-Signature"], commet_webhook_secret)

    _, unsigned = commet_signed_request.unsigned("payment.failed")
    assert "X-Commet-Signature" not in unsigned
    assert commet_webhook_secret not in repr(commet_signed_request)


def _apps(secret: str) -> tuple[Starlette, WebhookApp, list[str]]:
    seen: list[str] = []

    def record(event: SubscriptionActivated) -> None:
        seen.append(str(event.id))

    webhooks = Webhooks(secret, on_subscription_activated=record)
    return Starlette(routes=[webhook_route(webhooks)]), WebhookApp(webhooks), seen


def test_receiver_client_for_asgi_wsgi_and_url(
    commet_receiver: Any, commet_live_server: Any, commet_webhook_secret: str
) -> None:
    asgi, wsgi, seen = _apps(commet_webhook_secret)
    url = commet_live_server(asgi) + "/webhooks/commet"
    for target in (asgi, wsgi, url):
        receiver = commet_receiver(target)
        before = len(seen)
        assert receiver.deliver("subscription.activated").status_code == 200
        assert len(seen) == before + 1, target
        assert receiver.deliver("subscription.activated", secret="whsec_other").status_code == 403
        assert receiver.deliver_unsigned("subscription.activated").status_code == 403
        assert len(seen) == before + 1, target


def test_conformance_fixture_uses_the_plugin_secret(
    commet_conformance: Any, receiver: Any, effects: Any, monkeypatch: Any
) -> None:
    report = commet_conformance(receiver(), receiver(), secret=SECRET, probe=effects.count)
    report.assert_ok(strict=True)


def test_emulator_delivers_to_a_live_app_and_retries_a_failed_handler(
    commet_emulator: Any, commet_live_server: Any
) -> None:
    holder: dict[str, Any] = {}
    runs: list[str] = []
    handled = threading.Event()

    async def late(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await holder["app"](scope, receive, send)

    base = commet_live_server(late)
    endpoint = commet_emulator.create_endpoint(
        base + "/webhooks/commet", ["subscription.activated"]
    )
    assert endpoint["secret"].startswith("whsec_")

    def flaky(event: SubscriptionActivated) -> None:
        runs.append(str(event.id))
        if len(runs) == 1:
            raise ConnectionError("email service down")
        handled.set()

    webhooks = Webhooks(
        endpoint["secret"], on_subscription_activated=flaky, retry_on_handler_error=True
    )
    holder["app"] = Starlette(routes=[webhook_route(webhooks)])
    event_id = commet_emulator.send_event("subscription.activated")
    assert handled.wait(20), commet_emulator.log()
    assert runs == [event_id, event_id]  # the 500 was retried (0.1 s later at 600x)
    assert "ck_" not in repr(commet_emulator).replace("ck_********", "")


def test_emulator_answers_its_api(commet_emulator: Any) -> None:
    answer = httpx.get(commet_emulator.url + "/api/webhooks")
    assert answer.status_code in (401, 403)  # the key is required...
    assert commet_emulator.http.get("/api/webhooks").is_success  # ...and the fixture sends it


def test_plugin_is_registered_through_its_entry_point(tmp_path: Path) -> None:
    """A project that only installed the package gets the fixtures, no conftest needed."""
    (tmp_path / "test_user.py").write_text(
        "from commet_webhooks import Webhooks\n"
        "from commet_webhooks.wsgi import WebhookApp\n\n"
        "def test_it(commet_receiver, commet_signed_request, commet_webhook_secret):\n"
        "    app = WebhookApp(Webhooks(commet_webhook_secret))\n"
        "    receiver = commet_receiver(app)\n"
        "    assert receiver.post(*commet_signed_request('payment.failed')).status_code == 200\n"
        "    assert receiver.post(*commet_signed_request.forged('payment.failed')).status_code == 403\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COMMET_WEBHOOK_SECRET"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
