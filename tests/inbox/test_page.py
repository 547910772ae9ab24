"""The inbox page: server-rendered HTML over a real server, and headless Chromium replaying."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from commet_webhooks import Webhooks
from commet_webhooks.inbox import InboxStore, Status
from commet_webhooks.inbox.app import create_app
from commet_webhooks.testing import sample_event, signed_request
from support import browser
from support.net import free_port, wait_for_port, wait_until

TOKEN = "replay-token-for-tests-0123456789"


class Fixable:
    def __init__(self) -> None:
        self.broken = True
        self.ran: list[str] = []

    def __call__(self, event: Any) -> None:
        if self.broken:
            raise RuntimeError("handler bug <b>not markup</b>")
        self.ran.append(event.id)


@pytest.fixture
def handler() -> Fixable:
    return Fixable()


@pytest.fixture
def served(inbox: InboxStore, secret: str, handler: Fixable) -> Iterator[str]:
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payment_failed=handler)
    for n in range(3):
        webhooks.handle_sync(
            *signed_request(sample_event("payment.failed", id=f"evt_w{n}"), secret)
        )
    webhooks.handle_sync(*signed_request(sample_event("invoice.created", id="evt_fine"), secret))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(inbox, webhooks=webhooks, token=TOKEN),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            root_path="",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_page_lists_events_by_status_without_bodies_or_markup(served: str) -> None:
    page = httpx.get(served + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text
    assert "all (4)" in page.text and "failed (3)" in page.text and "done (1)" in page.text
    assert page.text.index("evt_fine") < page.text.index("evt_w0")  # newest first
    assert "handler bug &lt;b&gt;not markup&lt;/b&gt;" in page.text
    assert "organizationId" not in page.text  # bodies stay out of the page
    assert 'class="replay"' not in page.text and 'id="unlock"' in page.text

    failed = httpx.get(served + "/", params={"status": "failed"}, timeout=30).text
    assert "evt_w1" in failed and "evt_fine" not in failed
    by_type = httpx.get(served + "/", params={"type": "invoice.created"}, timeout=30).text
    assert "evt_fine" in by_type and "evt_w1" not in by_type
    odd = httpx.get(served + "/", params={"status": "bogus", "offset": "x"}, timeout=30)
    assert odd.status_code == 200
    assert httpx.get(served + "/nope", timeout=30).status_code == 404
    assert httpx.post(served + "/", timeout=30).status_code == 405


def test_replay_needs_the_token_and_refuses_cross_site_posts(
    served: str, inbox: InboxStore, handler: Fixable
) -> None:
    handler.broken = False
    assert httpx.post(served + "/replay/evt_w0", timeout=30).status_code == 403
    wrong = httpx.post(served + "/unlock", data={"token": "nope"}, timeout=30)
    assert wrong.status_code == 303 and "wrong+token" in wrong.headers["location"]
    with httpx.Client(base_url=served, timeout=30) as client:
        unlocked = client.post("/unlock", data={"token": TOKEN})
        assert unlocked.status_code == 303
        cookie = unlocked.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        assert 'class="replay"' in client.get("/").text
        foreign = client.post("/replay/evt_w0", headers={"origin": "https://evil.example"})
        assert foreign.status_code == 403 and handler.ran == []
        done = client.post("/replay/evt_w0")
        assert done.status_code == 303 and "done" in done.headers["location"]
        assert client.post("/replay/evt_missing").status_code == 404
    assert handler.ran == ["evt_w0"]
    assert inbox.get("evt_w0").status is Status.DONE  # type: ignore[union-attr]


@pytest.fixture
def chromium() -> Iterator[Any]:
    with browser.chromium("inbox-chromium-") as driver:
        yield driver


@pytest.mark.browser
def test_browser_unlocks_and_replays_a_failed_event_to_done(
    served: str, chromium: Any, inbox: InboxStore, handler: Fixable
) -> None:
    from selenium.webdriver.common.by import By

    chromium.get(served + "/?status=failed")
    row = chromium.find_element(By.ID, "event-evt_w2")
    assert "failed" in row.text and "RuntimeError" in row.text
    assert not row.find_elements(By.CSS_SELECTOR, "button.replay")

    chromium.find_element(By.CSS_SELECTOR, "#unlock input[name=token]").send_keys(TOKEN)
    chromium.find_element(By.CSS_SELECTOR, "#unlock button").click()
    wait_until(
        lambda: bool(chromium.find_elements(By.CSS_SELECTOR, "button.replay")), what="unlock"
    )

    handler.broken = False  # the fix is deployed
    chromium.find_element(By.ID, "event-evt_w2").find_element(
        By.CSS_SELECTOR, "button.replay"
    ).click()
    wait_until(lambda: bool(chromium.find_elements(By.ID, "notice")), what="the replay notice")
    assert "replayed evt_w2: done" in chromium.find_element(By.ID, "notice").text
    row = chromium.find_element(By.ID, "event-evt_w2")
    assert "done" in row.text and row.find_element(By.CLASS_NAME, "attempts").text == "2"
    assert not row.find_elements(By.CSS_SELECTOR, "button.replay")
    assert handler.ran == ["evt_w2"]
    assert inbox.get("evt_w2").status is Status.DONE  # type: ignore[union-attr]


def test_hostile_requests_get_clear_answers(served: str) -> None:
    with httpx.Client(base_url=served, timeout=30) as client:
        assert client.get("/", params={"offset": "-5", "type": "<script>"}).status_code == 200
        assert "<script>" not in client.get("/", params={"type": "<script>"}).text
        huge = client.post("/unlock", content=b"token=" + b"x" * 100_000)
        assert huge.status_code == 303 and "wrong+token" in huge.headers["location"]
        assert client.get("/replay/evt_w0").status_code == 405
        assert client.post("/replay/%00%ff").status_code == 403  # not unlocked
        client.post("/unlock", data={"token": TOKEN})
        assert client.post("/replay/%00%ff").status_code == 404
        assert client.post("/replay/" + "a" * 5000).status_code == 404


def test_the_page_refuses_a_weak_token_or_a_token_without_webhooks(inbox: InboxStore) -> None:
    with pytest.raises(ValueError, match="16"):
        create_app(inbox, webhooks=Webhooks("whsec_x"), token="short")
    with pytest.raises(ValueError, match="webhooks"):
        create_app(inbox, token=TOKEN)
    assert "replay=off" in repr(create_app(inbox))
