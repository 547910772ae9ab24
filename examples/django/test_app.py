"""Tests for this example, written with the commet-webhooks pytest plugin.

Run from the repository root: `.venv/bin/python -m pytest examples/django`. The plugin
comes with the testing extra (`pip install 'commet-webhooks[testing]'`); no conftest needed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("COMMET_WEBHOOK_SECRET", "whsec_dev")  # read when settings are made
PATH = "/webhooks/commet/"


@pytest.fixture(scope="module")
def app() -> Any:
    """The example's project as a WSGI app (Django settings are configured once)."""
    spec = importlib.util.spec_from_file_location(
        "example_django_app", Path(__file__).with_name("app.py")
    )
    assert spec is not None and spec.loader is not None
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its ROOT_URLCONF
    spec.loader.exec_module(module)
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


@pytest.fixture
def commet_webhook_secret() -> str:
    return os.environ["COMMET_WEBHOOK_SECRET"]


def emails(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "example.emails"]


def test_activation_sends_one_welcome_email(app, commet_receiver, caplog) -> None:
    receiver = commet_receiver(app, path=PATH)
    with caplog.at_level("INFO", logger="example.emails"):
        answer = receiver.deliver("subscription.activated", invoice_number="INV-0042")
    assert answer.status_code == 200
    assert emails(caplog) == ["welcome email -> user_123 (invoice INV-0042)"]


def test_forged_delivery_is_refused_and_sends_nothing(
    app, commet_receiver, commet_signed_request, caplog
) -> None:
    receiver = commet_receiver(app, path=PATH)
    with caplog.at_level("INFO", logger="example.emails"):
        answer = receiver.post(*commet_signed_request.forged("subscription.activated"))
    assert answer.status_code == 403
    assert emails(caplog) == []


def test_receiver_conformance(app, commet_conformance) -> None:
    # This example keeps no idempotency store and no effect a probe could count, so
    # the effect rules are reported "not checked" (docs/testing.md shows the probe).
    commet_conformance(app, path=PATH).assert_ok()
