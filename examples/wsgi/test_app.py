"""Tests for this example, written with the commet-webhooks pytest plugin.

Run from the repository root: `.venv/bin/python -m pytest examples/wsgi`. The plugin
comes with the testing extra (`pip install 'commet-webhooks[testing]'`); no conftest needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

APP = f"{Path(__file__).with_name('app.py')}:application"  # imported (and run) in process


@pytest.fixture
def commet_webhook_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COMMET_WEBHOOK_SECRET", "whsec_dev")  # app.py reads it at import
    return "whsec_dev"


def emails(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "example.emails"]


def test_activation_sends_one_welcome_email(commet_receiver, caplog) -> None:
    receiver = commet_receiver(APP)
    with caplog.at_level("INFO", logger="example.emails"):
        answer = receiver.deliver("subscription.activated", invoice_number="INV-0042")
    assert answer.status_code == 200
    assert emails(caplog) == ["welcome email -> user_123 (invoice INV-0042)"]


def test_forged_delivery_is_refused_and_sends_nothing(
    commet_receiver, commet_signed_request, caplog
) -> None:
    receiver = commet_receiver(APP)
    with caplog.at_level("INFO", logger="example.emails"):
        answer = receiver.post(*commet_signed_request.forged("subscription.activated"))
    assert answer.status_code == 403
    assert emails(caplog) == []


def test_receiver_conformance(commet_conformance) -> None:
    # This example keeps no idempotency store and no effect a probe could count, so
    # the effect rules are reported "not checked" (docs/testing.md shows the probe).
    report = commet_conformance(APP)
    report.assert_ok()
