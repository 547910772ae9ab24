"""The public API type-checks for users: typed handlers pass, mismatched ones are flagged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GOOD = """
from commet_webhooks import (
    Commet, CustomerStateChanged, PaymentFailed, Router, SubscriptionActivated, TrialStarted,
    WebhookEvent, Webhooks,
)

async def grant(event: SubscriptionActivated) -> None:
    total: int | float = event.data.invoice_total  # Commet types amounts as number
    print(total)

def start_trial(event: TrialStarted) -> None:
    print(event.data.trial_ends_at.isoformat() if event.data.trial_ends_at else None)

async def sync_access(event: CustomerStateChanged) -> None: ...

router = Router(on_trial_started=start_trial, on_customer_state_changed=sync_access)

def notify(event: PaymentFailed) -> None:
    print(event.data.failure_code)

webhooks = Webhooks(
    webhook_secret="whsec_x",
    on_subscription_activated=grant,
    on_payment_failed=notify,
    routers=[router],
)

@webhooks.on("payment.failed")
async def dunning(event: PaymentFailed) -> None: ...

@webhooks.on_payload
def everything(event: WebhookEvent) -> None: ...

reveal_type(dunning)

commet = Commet(api_key="ck_x")
sub = commet.subscriptions.get("user_123")
if sub.data and sub.data.status in ("active", "trialing"):
    pass
allowed: bool = commet.features.check(code="x", customer_id="u").data.allowed

def django_application() -> object:  # django-stubs annotate scope as dict, not MutableMapping
    from django.core.asgi import get_asgi_application

    from commet_webhooks.asgi import BodyLimit
    from commet_webhooks.django.asgi import limit_body

    BodyLimit(get_asgi_application(), ["/webhooks/commet/"], webhooks=webhooks)
    return limit_body(get_asgi_application(), webhooks=webhooks)
"""

BAD = """
from commet_webhooks import Router, SubscriptionActivated, Webhooks

async def grant(event: SubscriptionActivated) -> None: ...

Webhooks("whsec_x", on_payment_failed=grant)
Router(on_trial_started=grant)
"""


def mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "user_code.py"
    path.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )


def test_typed_handlers_type_check_and_decorators_keep_types(tmp_path: Path) -> None:
    result = mypy(tmp_path, GOOD)
    assert "error" not in result.stdout, result.stdout
    assert "PaymentFailed" in result.stdout  # the decorator returned the function unchanged


def test_handler_for_the_wrong_event_is_flagged(tmp_path: Path) -> None:
    result = mypy(tmp_path, BAD)
    assert result.returncode == 1
    assert 'Argument "on_payment_failed" to "Webhooks"' in result.stdout, result.stdout
    assert 'Argument "on_trial_started" to "Router"' in result.stdout, result.stdout
