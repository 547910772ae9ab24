"""Demo: sign a sample of every event type, run it through Webhooks.handle, print the result.

Run with ``scripts/demo``. Everything happens in process; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio

from commet_webhooks import MemoryStore, WebhookEvent, Webhooks
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_demo_secret"


async def main() -> int:
    handled: list[str] = []

    async def log_event(event: WebhookEvent) -> None:
        handled.append(event.event)
        print(f"  handler  {type(event).__name__:<24} data={event.data!r}"[:160])

    webhooks = Webhooks(webhook_secret=SECRET, on_payload=log_event, idempotency_store=MemoryStore())
    failures = 0
    for name in [*EVENT_TYPES, "trial.started"]:
        body, headers = signed_request(sample_event(name), SECRET)
        print(f"{name}")
        first = await webhooks.handle(body, headers)
        again = await webhooks.handle(body, headers)
        print(f"  answer   {first.status} {first.body.decode()}")
        print(f"  retry    {again.status} {again.body.decode()}")
        failures += first.status != 200 or b"duplicate" not in again.body
    forged = await webhooks.handle(b'{"event":"payment.failed"}', {"X-Commet-Signature": "0" * 64})
    print(f"forged body -> {forged.status} {forged.body.decode()}")
    failures += forged.status != 403
    print(f"\n{len(handled)} events handled, {failures} unexpected answers")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
