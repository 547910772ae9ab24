"""Optional ``INSTALLED_APPS`` entry (``"commet_webhooks.django"``): checks the settings."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

__all__ = ["CommetWebhooksConfig", "check_settings"]


class CommetWebhooksConfig(AppConfig):
    name = "commet_webhooks.django"
    label = "commet_webhooks"
    verbose_name = "Commet webhooks"

    def ready(self) -> None:
        checks.register(check_settings)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``COMMET_WEBHOOK_SECRET`` must be set; ``COMMET_WEBHOOK_OPTIONS`` must be a dict."""
    errors: list[checks.CheckMessage] = []
    secret = getattr(settings, "COMMET_WEBHOOK_SECRET", None)
    if not secret:
        errors.append(
            checks.Error(
                "COMMET_WEBHOOK_SECRET is not set.",
                hint="Set it to your Commet endpoint's signing secret (whsec_...).",
                id="commet_webhooks.E001",
            )
        )
    elif not isinstance(secret, (str, list, tuple)):
        errors.append(
            checks.Error(
                "COMMET_WEBHOOK_SECRET must be a string or a list of strings.",
                id="commet_webhooks.E002",
            )
        )
    options = getattr(settings, "COMMET_WEBHOOK_OPTIONS", None)
    if options is not None and not isinstance(options, dict):
        errors.append(
            checks.Error("COMMET_WEBHOOK_OPTIONS must be a dict.", id="commet_webhooks.E003")
        )
    return errors
