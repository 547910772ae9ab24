"""``trigger`` against ``listen``: both commands run as real subprocesses over real HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx

import commet_webhooks
from commet_webhooks.events import EVENT_TYPES


def _clean(result: subprocess.CompletedProcess[str], secret: str) -> None:
    assert "Traceback" not in result.stderr
    assert secret not in result.stdout + result.stderr


def test_every_event_type_is_delivered_verified_and_typed(
    cli: Any, listener: Any, secret: str
) -> None:
    for name, spec in EVENT_TYPES.items():
        result = cli("trigger", name, "--url", listener.url, "--secret", secret)
        assert result.returncode == 0, result.stderr
        assert "200" in result.stdout
        assert '"received": true' in result.stdout
        _clean(result, secret)
        got = listener.next_delivery()
        assert got["status"] == 200
        assert got["verified"] is True
        assert got["event"] == name
        envelope = got["envelope"]
        assert envelope["event"] == name
        assert got["class"] == spec.event_class.__name__  # parsed into the typed class
        assert envelope["data"] == spec.example  # the published example, as Commet sends it


def test_set_overrides_reach_the_receiver(cli: Any, listener: Any, secret: str) -> None:
    result = cli(
        "trigger",
        "subscription.plan_changed",
        "--url",
        listener.url,
        "--secret",
        secret,
        "--set",
        "previous_plan.name=Basic",
        "--set",
        "charge=5000",
        "--set",
        "customer_id=cus_42",
        "--set",
        "billingInterval=yearly",
        "--set",
        'data.flags={"beta": true}',
        "--set",
        "mode=live",
        "--set",
        "id=whev_fixed_1",
        "--set",
        "external_id=null",
    )
    assert result.returncode == 0, result.stderr
    envelope = listener.next_delivery()["envelope"]
    data = envelope["data"]
    example = EVENT_TYPES["subscription.plan_changed"].example
    assert data["previousPlan"] == {"id": example["previousPlan"]["id"], "name": "Basic"}
    assert data["charge"] == 5000
    assert data["customerId"] == "cus_42"
    assert data["billingInterval"] == "yearly"
    assert data["flags"] == {"beta": True}
    assert data["externalId"] is None
    assert envelope["mode"] == "live"
    assert envelope["id"] == "whev_fixed_1"


def test_wrong_secret_is_rejected_and_trigger_exits_1(cli: Any, listener: Any, secret: str) -> None:
    result = cli("trigger", "payment.failed", "--url", listener.url, "--secret", "whsec_wrong")
    assert result.returncode == 1
    assert "403" in result.stdout
    assert "Invalid signature" in result.stdout
    got = listener.next_delivery()
    assert got["status"] == 403
    assert got["verified"] is False
    assert got["envelope"] is None


def test_redelivery_of_the_same_event_is_a_duplicate(cli: Any, listener: Any, secret: str) -> None:
    args = ("trigger", "payment.received", "-u", listener.url, "-s", secret, "--set", "id=whev_d")
    first, second = cli(*args), cli(*args)
    assert first.returncode == second.returncode == 0
    assert '"duplicate": true' in second.stdout
    assert listener.next_delivery()["duplicate"] is False
    again = listener.next_delivery()
    assert again["duplicate"] is True
    assert again["verified"] is True


def test_unknown_event_type_warns_and_is_still_delivered(
    cli: Any, listener: Any, secret: str
) -> None:
    result = cli("trigger", "payment.faild", "-u", listener.url, "-s", secret, "--set", "amount=12")
    assert result.returncode == 0
    assert "not a modelled event type" in result.stderr
    assert "payment.failed" in result.stderr  # the suggestion
    got = listener.next_delivery()
    assert got["verified"] is True
    assert got["envelope"]["event"] == "payment.faild"
    assert got["envelope"]["data"] == {"amount": 12}


def test_non_2xx_answer_exits_1(cli: Any, listener: Any, secret: str) -> None:
    wrong_path = listener.url.replace("/webhooks/commet", "/elsewhere")
    result = cli("trigger", "invoice.created", "-u", wrong_path, "-s", secret)
    assert result.returncode == 1
    assert "404" in result.stdout
    assert listener.next_delivery()["status"] == 404


def test_unreachable_receiver_is_a_clear_error(cli: Any, secret: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        result = cli("trigger", "payment.failed", "-u", f"http://127.0.0.1:{port}/", "-s", secret)
    assert result.returncode == 1
    assert "cannot reach" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    _clean(result, secret)


def test_bad_trigger_input_is_a_usage_error(cli: Any, secret: str) -> None:
    cases = {
        ("--set", "no_equals_sign"): "field=value",
        ("--set", "=1"): "field=value",
        ("--set", "data=[1]"): "JSON object",
        ("--set", "invoice_total.x=1"): "not an object",
        ("--url", "ftp://example.com"): "http",
        ("--url", "not a url"): "http",
        (): "--url",
    }
    for extra, message in cases.items():
        result = cli("trigger", "payment.received", "-s", secret, *extra)
        assert result.returncode == 2, (extra, result.stdout, result.stderr)
        assert message in result.stderr, (extra, result.stderr)
        _clean(result, secret)
    no_secret = cli("trigger", "payment.received", "--url", "http://127.0.0.1:9/")
    assert no_secret.returncode == 2
    assert "COMMET_WEBHOOK_SECRET" in no_secret.stderr


def _printed_signature(stderr: str) -> str:
    line = next(x for x in stderr.splitlines() if x.startswith("X-Commet-Signature:"))
    return line.partition(":")[2].strip()


def test_dry_run_prints_the_exact_signed_bytes(cli: Any, secret: str, tmp_path: Path) -> None:
    result = cli("trigger", "subscription.created", "-s", secret, "--dry-run", "--set", "plan_id=x")
    assert result.returncode == 0
    signature = _printed_signature(result.stderr)
    body = result.stdout.encode("utf-8")  # stdout is the body and nothing else
    assert json.loads(body)["data"]["planId"] == "x"
    assert commet_webhooks.verify(body, signature, secret)
    printed = tmp_path / "printed.json"
    printed.write_bytes(body)
    verified = cli("verify", str(printed), "--signature", signature, "-s", secret)
    assert verified.returncode == 0, verified.stderr
    _clean(result, secret)


def test_dry_run_output_writes_the_exact_bytes(cli: Any, secret: str, tmp_path: Path) -> None:
    target = tmp_path / "body.json"
    result = cli("trigger", "payment.failed", "-s", secret, "--dry-run", "--output", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    signature = _printed_signature(result.stderr)
    verified = cli("verify", str(target), "--signature", signature, "-s", secret)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(target.read_bytes())["event"] == "payment.failed"
    without_dry_run = cli("trigger", "payment.failed", "-s", secret, "-o", str(target))
    assert without_dry_run.returncode == 2
    assert "--dry-run" in without_dry_run.stderr


def test_set_warns_about_a_field_the_event_data_lacks(cli: Any, secret: str) -> None:
    result = cli(
        "trigger", "payment.failed", "-s", secret, "--dry-run",
        "--set", "nosuchfield=3", "--set", "failure_code=x", "--set", "invoiceNumber=INV-9",
        "--set", "mode=live", "--set", "data.other.deep=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: 'nosuchfield' is not a field of payment.failed data; setting it anyway",
        "warning: 'other' is not a field of payment.failed data; setting it anyway",
    ]
    assert json.loads(result.stdout)["data"]["nosuchfield"] == 3  # still sent


def test_listen_pretty_output_and_red_line_for_bad_signature(
    cli: Any, start_listener: Any, secret: str
) -> None:
    with start_listener(secret) as listener:
        ok = cli("trigger", "subscription.activated", "-u", listener.url, "-s", secret)
        assert ok.returncode == 0
        first = listener.next_line()
        assert "200 verified subscription.activated" in first
        panel = [listener.next_line() for _ in range(3)]
        assert any("SubscriptionActivated" in line for line in panel)

        bad = cli("trigger", "payment.failed", "-u", listener.url, "-s", "whsec_wrong")
        assert bad.returncode == 1
        line = ""
        for _ in range(40):
            line = listener.next_line()
            if "bad signature" in line:
                break
        assert "403 bad signature" in line
        assert "payment.failed" in line
    banner = "\n".join(listener.stderr)
    assert "Listening on http://127.0.0.1:" in banner
    assert "whsec_********" in banner
    assert secret not in banner


def test_listen_usage_errors(cli: Any, secret: str) -> None:
    no_secret = cli("listen", "--port", "0")
    assert no_secret.returncode == 2
    assert "COMMET_WEBHOOK_SECRET" in no_secret.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = cli("listen", "--port", str(port), "--secret", secret)
    assert taken.returncode == 1
    assert "cannot listen" in taken.stderr
    assert "Traceback" not in taken.stderr


def test_receiver_that_never_answers_times_out(cli: Any, secret: str) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are queued but never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/webhooks/commet"
        result = cli("trigger", "payment.failed", "-u", url, "-s", secret, "--timeout", "0.5")
    assert result.returncode == 1
    assert "no answer" in result.stderr
    _clean(result, secret)


def test_listen_reports_bad_payloads_and_oversized_bodies(listener: Any, secret: str) -> None:
    garbage = b"this is not json"
    headers = {"X-Commet-Signature": commet_webhooks.sign(garbage, secret)}
    answer = httpx.post(listener.url, content=garbage, headers=headers, timeout=10)
    assert answer.status_code == 400
    got = listener.next_delivery()
    assert got["status"] == 400
    assert got["verified"] is True  # the signature checked out; the body was refused
    assert "Invalid payload" in got["error"]

    huge = b"x" * (1_048_576 + 10)
    answer = httpx.post(listener.url, content=huge, headers=headers, timeout=10)
    assert answer.status_code == 413
    assert listener.next_delivery()["status"] == 413

    answer = httpx.get(listener.url, timeout=10)
    assert answer.status_code == 405
    assert listener.next_delivery()["status"] == 405
