"""The dashboard: plain HTML over HTTP, and real headless Chromium clicking redeliver."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from emulator.emulator_helpers import Emulator, Receiver, wait_until
from support import browser


@pytest.fixture
def populated(emulator: Emulator, receiver: tuple[Receiver, str]) -> Emulator:
    """One delivered ``payment.failed`` and one ``invoice.created`` that failed for good."""
    _recorder, url = receiver
    emulator.endpoint(url, ["payment.failed"])
    emulator.endpoint("http://127.0.0.1:9/nobody-home", ["invoice.created"])
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    emulator.api("POST", "/api/emulator/events", json={"event": "invoice.created"})
    wait_until(lambda: emulator.deliveries(status="succeeded"), what="a delivery")
    return emulator


def page(emulator: Emulator, **params: str) -> str:
    response = httpx.get(emulator.url + "/", params={"refresh": "0", **params}, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_page_lists_events_newest_first_with_deliveries(populated: Emulator) -> None:
    html = page(populated)
    assert "<script" not in html
    assert html.index("invoice.created</code>") < html.index("payment.failed</code>")
    delivered = populated.deliveries(status="succeeded")[0]
    assert f'id="delivery-{delivered["id"]}"' in html
    assert "status-succeeded" in html and "code-ok" in html
    assert "<details><summary>Payload</summary>" in html and "&#34;organizationId&#34;" in html
    assert 'action="/dashboard/deliveries/' in html
    assert "whsec_" not in html  # secrets stay in the API


def test_filters_by_event_type_and_status(populated: Emulator) -> None:
    only_invoices = page(populated, event="invoice.created")
    assert "invoice.created</code>" in only_invoices
    assert "payment.failed</code> <span" not in only_invoices
    succeeded = page(populated, status="succeeded")
    assert "payment.failed</code> <span" in succeeded
    assert "invoice.created</code> <span" not in succeeded
    assert "No events match" in page(populated, event="nothing.here")
    assert page(populated, status="bogus", limit="x")  # bad filters are ignored, not errors


def test_auto_refresh_is_opt_in_with_a_toggle_that_keeps_the_filters(populated: Emulator) -> None:
    default = httpx.get(populated.url + "/", params={"event": "payment.failed"}, timeout=30).text
    assert 'http-equiv="refresh"' not in default  # an opened payload stays open
    assert "auto-refresh off" in default
    assert 'href="/?event=payment.failed&amp;refresh=5">auto-refresh off' in default

    on = httpx.get(
        populated.url + "/", params={"event": "payment.failed", "refresh": "5"}, timeout=30
    ).text
    assert '<meta http-equiv="refresh" content="5">' in on
    assert 'href="/?event=payment.failed">auto-refresh on' in on
    assert '<input type="hidden" name="refresh" value="5">' in on  # filtering keeps it on
    assert "<script" not in on


def test_page_says_how_many_events_and_links_to_older_ones(emulator: Emulator) -> None:
    for _ in range(53):
        emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    emulator.api("POST", "/api/emulator/events", json={"event": "invoice.created"})

    newest = page(emulator, event="payment.failed")
    assert "Newest 50 of 53 event(s)" in newest
    assert newest.count('<section class="event"') == 50
    assert 'class="older" href="/?event=payment.failed&amp;offset=50"' in newest
    assert 'class="newer"' not in newest

    older = page(emulator, event="payment.failed", offset="50")
    assert "Events 51-53 of 53" in older
    assert older.count('<section class="event"') == 3
    assert 'class="older"' not in older
    assert 'class="newer" href="/?event=payment.failed"' in older
    assert "Newest 50 of 54 event(s)" in page(emulator)


def test_layout_event_type_stands_out_tables_scroll_and_no_answer_badge(
    populated: Emulator,
) -> None:
    unreachable = next(
        d for d in populated.deliveries() if d["url"].startswith("http://127.0.0.1:9/")
    )
    wait_until(
        lambda: populated.api("GET", f"/api/emulator/deliveries/{unreachable['id']}")["attempts"],
        what="an attempt on the unreachable endpoint",
    )
    html = page(populated)
    assert ".event h2 code { font-size: 1rem; }" in html
    assert ".scroll { overflow-x: auto; }" in html
    assert '<div class="scroll">\n<table id="endpoints">' in html
    assert (
        f'<div class="scroll">\n  <table class="delivery" id="delivery-{unreachable["id"]}">'
        in html
    )
    assert '<span class="badge code-bad">no answer</span>' in html
    assert ">none<" not in html


def test_redeliver_form_post_redirects_back(populated: Emulator) -> None:
    delivery = populated.deliveries(status="succeeded")[0]
    response = httpx.post(
        f"{populated.url}/dashboard/deliveries/{delivery['id']}/retry?event=payment.failed",
        timeout=30,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/?event=payment.failed"
    wait_until(
        lambda: (
            len(populated.api("GET", f"/api/emulator/deliveries/{delivery['id']}")["attempts"]) == 2
        ),
        what="the manual attempt",
    )


def test_cross_site_form_posts_are_refused(populated: Emulator) -> None:
    delivery = populated.deliveries(status="succeeded")[0]
    response = httpx.post(
        f"{populated.url}/dashboard/deliveries/{delivery['id']}/retry",
        headers={"origin": "https://evil.example"},
        timeout=30,
    )
    assert response.status_code == 403
    missing = httpx.post(f"{populated.url}/dashboard/deliveries/dlv_nope/retry", timeout=30)
    assert missing.status_code == 404


# ---------------------------------------------------------------------- real browser


@pytest.fixture
def chromium() -> Iterator[object]:
    with browser.chromium("emulator-chromium-") as driver:
        yield driver


@pytest.mark.browser
def test_browser_lists_a_delivery_and_redelivers_it(populated: Emulator, chromium: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(chromium, WebDriver)
    delivered = populated.deliveries(status="succeeded")[0]
    chromium.get(populated.url + "/?refresh=0&event=payment.failed")
    table = chromium.find_element(By.ID, f"delivery-{delivered['id']}")
    assert "succeeded" in table.text and delivered["url"] in table.text
    assert "200" in table.text

    table.find_element(By.CSS_SELECTOR, "button.redeliver").click()
    wait_until(lambda: "event=payment.failed" in chromium.current_url, what="redirect back")
    wait_until(
        lambda: (
            len(populated.api("GET", f"/api/emulator/deliveries/{delivered['id']}")["attempts"])
            == 2
        ),
        what="a new attempt",
    )
    after = populated.api("GET", f"/api/emulator/deliveries/{delivered['id']}")
    assert after["attempts"][-1]["manual"] is True


# ---------------------------------------------------------------------- health, clock, families


def test_endpoint_health_and_re_enable(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.fail_next = 10**6
    emulator = make_emulator(retry_schedule=[], auto_disable_after=1)
    endpoint = emulator.endpoint(url)
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    wait_until(
        lambda: not emulator.api("GET", f"/api/webhooks/{endpoint['id']}")["enabled"],
        what="auto-disabled",
    )
    html = page(emulator)
    row = html[html.index(f'id="endpoint-{endpoint["id"]}"') :]
    row = row[: row.index("</tr>")]
    assert "auto-disabled" in row and 'class="enable"' in row
    refused = httpx.post(
        f"{emulator.url}/dashboard/endpoints/{endpoint['id']}/enable",
        headers={"origin": "https://evil.example"},
        timeout=30,
    )
    assert refused.status_code == 403
    enabled = httpx.post(f"{emulator.url}/dashboard/endpoints/{endpoint['id']}/enable", timeout=30)
    assert enabled.status_code == 303
    assert emulator.api("GET", f"/api/v1/webhooks/{endpoint['id']}")["isActive"] is True
    assert "auto-disabled" not in page(emulator)


def test_clock_panel_advances_the_test_clock(emulator: Emulator) -> None:
    emulator.api("POST", "/api/v1/customers", json={"externalId": "c", "email": "c@example.com"})
    sub = emulator.api(
        "POST", "/api/v1/subscriptions", json={"customerId": "c", "planId": "plan_starter"}
    )
    emulator.api("POST", f"/api/emulator/subscriptions/{sub['id']}/pay")
    assert "real time (never advanced)" in page(emulator)
    bad = httpx.post(f"{emulator.url}/dashboard/clock/advance", data={"days": "x"}, timeout=30)
    assert bad.status_code == 400
    moved = httpx.post(f"{emulator.url}/dashboard/clock/advance", data={"days": "35"}, timeout=30)
    assert moved.status_code == 303
    html = page(emulator)
    assert "simulated" in html and "Last run: 1 billing deadline(s)" in html
    renewals = emulator.api("GET", "/api/emulator/events", params={"event": "invoice.created"})
    assert len(renewals) == 1


def test_events_filter_by_family(populated: Emulator) -> None:
    html = page(populated, family="invoice")
    assert "invoice.created</code> <span" in html
    assert "payment.failed</code> <span" not in html
    assert '<option value="invoice" selected>' in html
    assert "payment.failed</code> <span" in page(populated, family="nonsense")  # ignored


@pytest.mark.browser
def test_browser_advances_the_clock_and_re_enables_an_endpoint(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str], chromium: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(chromium, WebDriver)
    recorder, url = receiver
    recorder.fail_next = 1
    emulator = make_emulator(retry_schedule=[], auto_disable_after=1)
    endpoint = emulator.endpoint(url)
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    wait_until(
        lambda: not emulator.api("GET", f"/api/webhooks/{endpoint['id']}")["enabled"],
        what="auto-disabled",
    )
    chromium.get(emulator.url + "/?refresh=0")
    chromium.find_element(
        By.CSS_SELECTOR, f'button.enable[data-endpoint="{endpoint["id"]}"]'
    ).click()
    wait_until(
        lambda: emulator.api("GET", f"/api/webhooks/{endpoint['id']}")["enabled"],
        what="re-enabled from the browser",
    )
    chromium.get(emulator.url + "/?refresh=0")
    chromium.find_element(By.ID, "advance-clock").click()
    wait_until(lambda: emulator.api("GET", "/api/v1/test-clock")["isActive"], what="advanced")
    wait_until(lambda: "simulated" in chromium.page_source, what="the page shows it")
    assert emulator.api("GET", "/api/v1/test-clock")["isActive"] is True
