"""Tests for this example, written with the commet-webhooks pytest plugin.

Run from the repository root: `.venv/bin/python -m pytest examples/flask`. The plugin
comes with the testing extra (`pip install 'commet-webhooks[testing]'`); no conftest needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest


def load_example() -> ModuleType:
    """Run app.py afresh: one more instance of the app, as another worker process has."""
    spec = importlib.util.spec_from_file_location(
        "flask_example", Path(__file__).with_name("app.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def commet_webhook_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("COMMET_WEBHOOK_SECRET", "whsec_dev")  # app.py reads both at import
    monkeypatch.setenv("COMMET_WEBHOOKS_DB", str(tmp_path / "webhooks.db"))
    return "whsec_dev"


@pytest.fixture
def example(commet_webhook_secret: str) -> ModuleType:
    return load_example()


def emails(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "example.emails"]


def test_activation_sends_one_welcome_email(example, commet_receiver, caplog) -> None:
    receiver = commet_receiver(example.app)
    with caplog.at_level("INFO", logger="example.emails"):
        answer = receiver.deliver("subscription.activated", invoice_number="INV-0042")
    assert answer.status_code == 200
    assert emails(caplog) == ["welcome email -> user_123 (invoice INV-0042)"]
    assert example.count_welcome_emails() == 1


def test_a_redelivery_sends_no_second_email(
    example, commet_receiver, commet_signed_request
) -> None:
    receiver = commet_receiver(example.app)
    delivery = commet_signed_request("subscription.activated")
    first, again = receiver.post(*delivery), receiver.post(*delivery)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["duplicate"] is True
    assert example.count_welcome_emails() == 1


def test_forged_delivery_is_refused_and_sends_nothing(
    example, commet_receiver, commet_signed_request, caplog
) -> None:
    receiver = commet_receiver(example.app)
    with caplog.at_level("INFO", logger="example.emails"):
        answer = receiver.post(*commet_signed_request.forged("subscription.activated"))
    assert answer.status_code == 403
    assert emails(caplog) == []
    assert example.count_welcome_emails() == 0


def test_receiver_conformance(example, commet_conformance) -> None:
    # Two instances sharing the database file, as two workers do; the probe counts emails.
    second = load_example().app
    report = commet_conformance(example.app, second, probe=example.count_welcome_emails)
    report.assert_ok(strict=True)  # every rule checked, and passed
