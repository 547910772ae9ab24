"""Commet webhooks in Django, with the settings-driven plugin and its signals.

A whole Django project in one file: settings, URLs and signal receivers. A welcome
email on activation, a goodbye on cancellation; the "emails" are log lines.
Run command and a test drive: README.md beside this file.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import django
from django.conf import settings
from django.dispatch import receiver
from django.urls import include, path

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret"),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["commet_webhooks.django"],  # adds a system check for the settings
    MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
    COMMET_WEBHOOK_SECRET=os.environ.get("COMMET_WEBHOOK_SECRET"),
    LOGGING={
        "version": 1,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {"example": {"handlers": ["console"], "level": "INFO"}},
    },
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from commet_webhooks import SubscriptionActivated, SubscriptionCanceled  # noqa: E402
from commet_webhooks.django.asgi import limit_body  # noqa: E402
from commet_webhooks.django.signals import (  # noqa: E402
    subscription_activated,
    subscription_canceled,
)

emails = logging.getLogger("example.emails")

urlpatterns = [path("webhooks/commet/", include("commet_webhooks.django.urls"))]


@receiver(subscription_activated)
def send_welcome_email(sender: type, event: SubscriptionActivated, **kwargs: Any) -> None:
    emails.info(
        "welcome email -> %s (invoice %s)", event.data.customer_id, event.data.invoice_number
    )


@receiver(subscription_canceled)
def send_cancellation_email(sender: type, event: SubscriptionCanceled, **kwargs: Any) -> None:
    emails.info("cancellation email -> %s (ends %s)", event.data.customer_id, event.data.end_date)


# Served by an ASGI server (see README.md): the body limit holds before Django reads.
application = limit_body(get_asgi_application(), "/webhooks/commet/")
# Served by a WSGI server: the views stop reading at the limit themselves.
wsgi_application = get_wsgi_application()


if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
