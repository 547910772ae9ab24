"""``path("webhooks/commet/", include("commet_webhooks.django.urls"))``: the plugin's URLs."""

from __future__ import annotations

from django.urls import path

from . import settings_view

app_name = "commet_webhooks"

urlpatterns = [path("", settings_view, name="receive")]
