"""Tests for this example, written with the commet-webhooks pytest plugin.

Run from the repository root: `.venv/bin/python -m pytest examples/django`. The plugin
comes with the testing extra (`pip install 'commet-webhooks[testing]'`); no conftest needed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

os.environ.setdefault("COMMET_WEBHOOK_SECRET", "whsec_dev")  # read when settings are made
PATH = "/webhooks/commet/"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The example's project (Django settings are configured once per process)."""
    with pytest.MonkeyPatch.context() as env:  # app.py reads it at import
        env.setenv("COMMET_WEBHOOKS_DB", str(tmp_path_factory.mktemp("django") / "webhooks.db"))
        spec = importlib.util.spec_from_file_location(
            "example_django_app", Path(__file__).with_name("app.py")
        )
        assert spec is not None and spec.loader is not None
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # ROOT_URLCONF
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app(example: ModuleType) -> Any:
    """The project as a WSGI app."""
    return example.wsgi_application


@pytest.fixture
def commet_webhook_secret() -> str:
    return os.environ["COMMET_WEBHOOK_SECRET"]


def emails(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "example.emails"]


def test_activation_sends_one_welcome_email(example, app, commet_receiver, caplog) -> None:
    receiver = commet_receiver(app, path=PATH)
    before = example.count_welcome_emails()  # the database is shared by this module's tests
    with caplog.at_level("INFO", logger="example.emails"):
        answer = receiver.deliver("subscription.activated", invoice_number="INV-0042")
    assert answer.status_code == 200
    assert emails(caplog) == ["welcome email -> user_123 (invoice INV-0042)"]
    assert example.count_welcome_emails() == before + 1


def test_a_redelivery_sends_no_second_email(
    example, app, commet_receiver, commet_signed_request
) -> None:
    receiver = commet_receiver(app, path=PATH)
    before = example.count_welcome_emails()
    delivery = commet_signed_request("subscription.activated")
    first, again = receiver.post(*delivery), receiver.post(*delivery)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["duplicate"] is True
    assert example.count_welcome_emails() == before + 1


def test_forged_delivery_is_refused_and_sends_nothing(
    example, app, commet_receiver, commet_signed_request, caplog
) -> None:
    receiver = commet_receiver(app, path=PATH)
    before = example.count_welcome_emails()
    with caplog.at_level("INFO", logger="example.emails"):
        answer = receiver.post(*commet_signed_request.forged("subscription.activated"))
    assert answer.status_code == 403
    assert emails(caplog) == []
    assert example.count_welcome_emails() == before


def test_receiver_conformance(example, app, commet_conformance) -> None:
    report = commet_conformance(app, path=PATH, probe=example.count_welcome_emails)
    report.assert_ok()
    # One process holds one Django project, so there is no second instance here and the
    # two-worker rule is not checked; README.md checks it by URL against two servers.
    assert [r.rule for r in report.not_checked] == ["concurrent-duplicates-run-once"]
