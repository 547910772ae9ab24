"""Each rule of the conformance suite against real receivers in this process.

The reference receiver passes every rule; each variant changes one setting and must
fail exactly the rules that setting breaks, with a message that names the fix. A rule
that lacks what it needs is reported as not checked, never as passed.
"""

from __future__ import annotations

from typing import Any

import pytest

from commet_webhooks.conformance import RULES, Outcome, run_suite
from commet_webhooks.events import EVENT_TYPES

SECRET = "whsec_conformance_3c1f9a"
ALL = [rule.id for rule in RULES]
EFFECT_RULES = {
    "forged-signature-runs-no-handler",
    "duplicate-runs-once",
    "concurrent-duplicates-run-once",
    "crash-is-retried",
}

PASSED, FAILED, NOT_CHECKED = Outcome.PASSED, Outcome.FAILED, Outcome.NOT_CHECKED


def expect(**changed: Outcome) -> dict[str, Outcome]:
    """Every rule passed, except those named (underscores for dashes)."""
    outcomes = dict.fromkeys(ALL, PASSED)
    for name, outcome in changed.items():
        rule = name.replace("_", "-")
        assert rule in outcomes, rule
        outcomes[rule] = outcome
    return outcomes


def test_the_rules_are_the_ones_documented() -> None:
    assert ALL == [
        "forged-signature-rejected",
        "forged-signature-runs-no-handler",
        "raw-body-verified",
        "every-event-type-accepted",
        "unknown-event-type-accepted",
        "oversized-body-rejected",
        "duplicate-acknowledged",
        "duplicate-runs-once",
        "concurrent-duplicates-run-once",
        "crash-is-retried",
    ]


@pytest.mark.parametrize("framework", ["starlette", "flask"])
def test_reference_receiver_passes_every_rule(receiver: Any, effects: Any, framework: str) -> None:
    report = run_suite(
        receiver(framework=framework),
        receiver(framework=framework),
        secret=SECRET,
        probe=effects.count,
    )
    assert report.outcomes() == expect(), report.format()
    assert report.ok
    report.assert_ok(strict=True)
    assert (
        f"each of the {len(EVENT_TYPES)} event types" in report["every-event-type-accepted"].detail
    )


def test_every_registered_event_type_is_sent(receiver: Any, effects: Any) -> None:
    """The rule iterates the registry: one delivery per type reaches the receiver."""
    seen: list[str] = []
    app = receiver()
    webhooks_app = app

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            seen.append(headers.get(b"x-commet-event", b"").decode())
        await webhooks_app(scope, receive, send)

    report = run_suite(spy, secret=SECRET, rules=["every-event-type-accepted"])
    assert report["every-event-type-accepted"].outcome is PASSED
    assert seen == list(EVENT_TYPES)


def test_without_a_probe_effect_rules_are_not_checked(receiver: Any) -> None:
    report = run_suite(receiver(), receiver(), secret=SECRET)
    assert report.outcomes() == expect(**{r: NOT_CHECKED for r in EFFECT_RULES})
    assert report.ok  # nothing failed...
    with pytest.raises(AssertionError, match="NOT CHECKED"):
        report.assert_ok(strict=True)  # ...but strict wants every rule checked
    assert "--probe" in report["duplicate-runs-once"].detail


def test_a_probe_that_never_moves_proves_nothing(receiver: Any) -> None:
    report = run_suite(receiver(), receiver(), secret=SECRET, probe=lambda: 0)
    for rule in EFFECT_RULES:
        assert report[rule].outcome is NOT_CHECKED, report.format()
    assert "did not move" in report["duplicate-runs-once"].detail


def test_a_probe_that_raises_is_reported(receiver: Any) -> None:
    def broken_probe() -> int:
        raise ConnectionError("database down")

    report = run_suite(receiver(), secret=SECRET, probe=broken_probe, rules=["duplicate-runs-once"])
    result = report["duplicate-runs-once"]
    assert result.outcome is NOT_CHECKED
    assert "ConnectionError: database down" in result.detail


def test_one_instance_given_as_an_object_leaves_the_two_worker_rule_unchecked(
    receiver: Any, effects: Any
) -> None:
    report = run_suite(receiver(), secret=SECRET, probe=effects.count)
    assert report.outcomes() == expect(concurrent_duplicates_run_once=NOT_CHECKED)
    assert "second instance" in report["concurrent-duplicates-run-once"].detail


def test_no_idempotency_store_runs_duplicates_twice(receiver: Any, effects: Any) -> None:
    report = run_suite(
        receiver(store=None), receiver(store=None), secret=SECRET, probe=effects.count
    )
    assert report.outcomes() == expect(
        duplicate_runs_once=FAILED, concurrent_duplicates_run_once=FAILED
    ), report.format()
    detail = report["duplicate-runs-once"].detail
    assert "2 times" in detail and "idempotency_store" in detail


def test_memory_store_under_two_instances_fails_only_the_two_worker_rule(
    receiver: Any, effects: Any
) -> None:
    report = run_suite(
        receiver(store="memory"), receiver(store="memory"), secret=SECRET, probe=effects.count
    )
    assert report.outcomes() == expect(concurrent_duplicates_run_once=FAILED), report.format()
    detail = report["concurrent-duplicates-run-once"].detail
    assert "MemoryStore" in detail and "RedisStore" in detail


def test_no_retry_on_handler_error_loses_the_crashed_event(receiver: Any, effects: Any) -> None:
    report = run_suite(receiver(retry=False), secret=SECRET, probe=effects.count)
    assert report["crash-is-retried"].outcome is FAILED, report.format()
    assert "retry_on_handler_error=True" in report["crash-is-retried"].detail


def test_a_handler_without_the_crash_hook_leaves_the_crash_rule_unchecked(
    receiver: Any, effects: Any
) -> None:
    report = run_suite(receiver(crash_hook=False), secret=SECRET, probe=effects.count)
    result = report["crash-is-retried"]
    assert result.outcome is NOT_CHECKED
    assert "simulate_crash(event)" in result.detail


def test_no_size_limit_fails_the_413_rule_unless_the_limit_is_given(receiver: Any) -> None:
    big = 4 * 1024 * 1024
    report = run_suite(
        receiver(max_body_bytes=big), secret=SECRET, rules=["oversized-body-rejected"]
    )
    result = report["oversized-body-rejected"]
    assert result.outcome is FAILED
    assert "max_body_bytes" in result.detail and "--max-body-bytes" in result.detail

    told = run_suite(
        receiver(max_body_bytes=big),
        secret=SECRET,
        max_body_bytes=big,
        rules=["oversized-body-rejected"],
    )
    assert told["oversized-body-rejected"].outcome is PASSED


def test_refusing_unknown_event_types_fails_only_that_rule(receiver: Any, effects: Any) -> None:
    report = run_suite(receiver(reject_unknown=True), secret=SECRET, probe=effects.count)
    assert report.outcomes() == expect(
        unknown_event_type_accepted=FAILED, concurrent_duplicates_run_once=NOT_CHECKED
    ), report.format()
    assert "answered 500" in report["unknown-event-type-accepted"].detail


def test_an_unverified_receiver_fails_the_forgery_rules(
    unverified_receiver: Any, effects: Any
) -> None:
    report = run_suite(
        unverified_receiver(),
        secret=SECRET,
        probe=effects.count,
        rules=["forged-signature-rejected", "forged-signature-runs-no-handler"],
    )
    assert report.outcomes() == {
        "forged-signature-rejected": FAILED,
        "forged-signature-runs-no-handler": FAILED,
    }, report.format()
    assert "accepts forged events" in report["forged-signature-rejected"].detail
    assert "ran your handler" in report["forged-signature-runs-no-handler"].detail


def test_a_wrong_path_says_so(receiver: Any) -> None:
    report = run_suite(
        receiver(), secret=SECRET, path="/hooks", rules=["forged-signature-rejected"]
    )
    result = report["forged-signature-rejected"]
    assert result.outcome is FAILED
    assert "404" in result.detail and "--path" in result.detail


def test_the_secret_never_appears_in_a_report(receiver: Any, effects: Any) -> None:
    report = run_suite(receiver(store=None), secret=SECRET, probe=effects.count)
    assert SECRET not in report.format()


def test_usage_errors() -> None:
    with pytest.raises(TypeError):
        run_suite(secret=SECRET)
    with pytest.raises(ValueError, match="secret"):
        run_suite("http://127.0.0.1:9/webhooks/commet", secret="")
    with pytest.raises(ValueError, match="unknown rule"):
        run_suite("http://127.0.0.1:9/webhooks/commet", secret=SECRET, rules=["nope"])


def test_two_instances_by_url_with_a_url_probe(
    receiver: Any, effects: Any, commet_live_server: Any
) -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def count(request: Any) -> JSONResponse:
        return JSONResponse({"count": effects.count()})

    probe_url = commet_live_server(Starlette(routes=[Route("/effects", count)])) + "/effects"
    urls = [commet_live_server(receiver()) + "/webhooks/commet" for _ in range(2)]
    report = run_suite(*urls, secret=SECRET, probe=probe_url)
    assert report.outcomes() == expect(), report.format()

    alone = run_suite(
        urls[0], secret=SECRET, probe=probe_url, rules=["concurrent-duplicates-run-once"]
    )
    result = alone["concurrent-duplicates-run-once"]
    assert result.outcome is NOT_CHECKED
    assert "--url twice" in result.detail


def test_the_oversized_probe_goes_on_a_connection_of_its_own(commet_live_server: Any) -> None:
    # A server may close a connection after refusing a body it did not read (gunicorn
    # does, without saying so): the next request must not reuse that socket.
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from commet_webhooks.conformance._target import UrlReceiver

    async def client_port(request: Any) -> PlainTextResponse:
        return PlainTextResponse(str(request.client.port))

    url = commet_live_server(Starlette(routes=[Route("/", client_port, methods=["GET", "POST"])]))
    with UrlReceiver(url + "/") as receiver:
        kept = {receiver.post(b"{}", {}).text for _ in range(2)}
        alone = receiver.post_alone(b"{}", {}).text
        assert len(kept) == 1
        assert alone not in kept
        assert receiver.post(b"{}", {}).text in kept  # the pooled connection lives on


def test_a_receiver_that_never_answers_fails_with_a_timeout() -> None:
    import asyncio

    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(30)

    report = run_suite(stuck, secret=SECRET, timeout=0.5, rules=["unknown-event-type-accepted"])
    result = report["unknown-event-type-accepted"]
    assert result.outcome is FAILED
    assert "no answer within 0.5 s" in result.detail


def test_an_app_file_may_import_its_sibling_modules(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, fresh_imports: None
) -> None:
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    (tmp_path / "receiver_settings_3f.py").write_text(f"SECRET = {SECRET!r}\n")
    (tmp_path / "main.py").write_text(
        "from receiver_settings_3f import SECRET\n"
        "from commet_webhooks import Webhooks\n"
        "from commet_webhooks.wsgi import WebhookApp\n"
        "app = WebhookApp(Webhooks(SECRET))\n"
    )
    report = run_suite(f"{tmp_path}/main.py:app", secret=SECRET, rules=["raw-body-verified"])
    assert report["raw-body-verified"].outcome is PASSED, report.format()


def test_the_same_import_string_twice_gives_two_instances(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, fresh_imports: None
) -> None:
    from pathlib import Path

    monkeypatch.setenv("EXAMPLE_DATA_DIR", str(tmp_path))
    spec = Path(__file__).resolve().parents[2] / "examples" / "broken" / "memory_store.py"
    report = run_suite(
        f"{spec}:app",
        f"{spec}:app",
        secret="whsec_dev",
        probe=f"{spec}:count_welcome_emails",
        rules=["duplicate-runs-once", "concurrent-duplicates-run-once"],
    )
    assert report.outcomes() == {
        "duplicate-runs-once": PASSED,
        "concurrent-duplicates-run-once": FAILED,
    }, report.format()
