"""What every group of routes works with: storage, the lifecycle and the delivery engine."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ...events import EVENT_TYPES
from ..delivery import DeliveryEngine
from ..errors import ApiError, validation_error
from ..lifecycle import Lifecycle
from ..storage import Delivery, Endpoint, Storage
from .http import is_loopback_host

__all__ = ["Context"]

EVENT_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")
EVENT_NAME_HINT = "must look like 'payment.failed' (dot-separated words)"


@dataclass
class Context:
    """The emulator's parts, as the routes use them."""

    store: Storage
    lifecycle: Lifecycle
    engine: DeliveryEngine
    allow_http: bool
    allow_private: bool = True

    # ------------------------------------------------------------------ endpoints

    def check_url(self, url: str) -> str:
        """An endpoint URL the emulator will POST to, or a 400 saying why not."""
        if any(ord(c) < 32 or ord(c) == 127 for c in url):
            raise validation_error("url", "must not contain control characters")
        try:
            parts = urlsplit(url.strip())
            host = parts.hostname or ""
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise validation_error("url", "is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not host:
            raise validation_error("url", "must be an absolute http(s) URL")
        if parts.scheme == "http" and not (self.allow_http or is_loopback_host(host)):
            raise validation_error(
                "url",
                "must use https (plain http is allowed only for loopback hosts, "
                "or when the emulator runs with --allow-http)",
            )
        if not self.allow_private and _private_target(host):
            raise validation_error(
                "url", "points at a private or link-local address (start with --allow-private)"
            )
        return url.strip()

    @staticmethod
    def check_events(events: list[str]) -> list[str]:
        for index, name in enumerate(events):
            if name != "*" and not EVENT_NAME.match(name):
                raise validation_error(f"events[{index}]", f"{name!r} {EVENT_NAME_HINT} or '*'")
        return list(dict.fromkeys(events))

    @staticmethod
    def event_warnings(events: list[str]) -> list[str]:
        """One warning per subscribed event name the registry does not know (likely a typo)."""
        warnings = []
        for name in events:
            if name == "*" or name in EVENT_TYPES:
                continue
            close = difflib.get_close_matches(name, list(EVENT_TYPES), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            warnings.append(f"unknown event type {name!r}{hint}")
        return warnings

    def endpoint(self, endpoint_id: str) -> Endpoint:
        found = self.store.endpoints.get(endpoint_id)
        if found is None:
            raise ApiError(404, "not_found", f"endpoint {endpoint_id!r} not found")
        return found

    # ------------------------------------------------------------------ deliveries

    def delivery(self, delivery_id: str) -> Delivery:
        found = self.store.events.delivery(delivery_id)
        if found is None:
            raise ApiError(404, "not_found", f"delivery {delivery_id!r} not found")
        return found

    def redeliver(self, delivery_id: str) -> None:
        """Queue a manual attempt (shared by the API and the dashboard)."""
        self.delivery(delivery_id)
        if not self.store.outbox.queue_manual(delivery_id):
            raise ApiError(
                409, "invalid_state", f"delivery {delivery_id!r} belongs to a deleted endpoint"
            )
        self.engine.wake()

    def emitted(self) -> None:
        """Events were written: let the engine look for due work now."""
        self.engine.wake()


def _private_target(host: str) -> bool:
    import ipaddress

    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return (address.is_private or address.is_link_local) and not address.is_loopback
