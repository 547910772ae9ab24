"""Verify + parse cost per event, and verification of a 1 MiB body.

Every figure is a ratio against a baseline measured in the same process, in the same
run, with the same bodies, so a noisy shared machine moves numerator and denominator
together. Run: ``.venv/bin/python bench/core_bench.py`` (or ``bench/run`` for all).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from commet_webhooks import Webhooks, construct_event
from commet_webhooks._signing import SecretKeys
from commet_webhooks.events import EVENT_TYPES, decode_event
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_bench_secret_0123456789abcdef"
ROUNDS = 7


def best_per_call(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call: the best of ROUNDS runs (the least disturbed by other load)."""
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return min(times)


def cycle(items: list[Any]) -> Callable[[], Any]:
    state = {"i": 0}
    n = len(items)

    def next_item() -> Any:
        i = state["i"]
        state["i"] = (i + 1) % n
        return items[i]

    return next_item


def per_event_candidates() -> dict[str, Callable[[], object]]:
    requests = [signed_request(sample_event(name), SECRET) for name in EVENT_TYPES]
    bodies = [(body, headers["X-Commet-Signature"]) for body, headers in requests]
    sizes = [len(b) for b, _ in bodies]
    print(f"bodies: {len(bodies)} event types, {min(sizes)}-{max(sizes)} bytes")
    key = SECRET.encode()
    pick = cycle(bodies)
    pick_request = cycle(requests)

    def floor() -> object:
        body, signature = pick()
        expected = hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise AssertionError
        return json.loads(body)

    def ours_construct_event() -> object:
        body, signature = pick()
        return construct_event(body, signature, SECRET)

    keys = SecretKeys(SECRET)

    def ours_preencoded_key() -> object:
        body, signature = pick()
        if not keys.verify(body, signature):
            raise AssertionError
        return decode_event(body)

    webhooks = Webhooks(SECRET)

    def ours_handle_sync() -> object:
        body, headers = pick_request()
        return webhooks.handle_sync(body, headers)

    candidates: dict[str, Callable[[], object]] = {
        "floor: hmac + compare_digest + json.loads (untyped)": floor,
        "ours: construct_event (typed)": ours_construct_event,
        "ours: SecretKeys.verify + decode_event (typed)": ours_preencoded_key,
        "ours: Webhooks.handle_sync, no handler (typed)": ours_handle_sync,
    }

    try:
        from commet.resources.webhooks import verify_and_parse_payload
        from commet.webhook_events import WebhookEvent as SdkEvent
    except ImportError:
        print("commet-sdk not installed: skipping its baseline (pip install -e '.[bench]')")
    else:
        import dataclasses

        sdk_fields = {f.name for f in dataclasses.fields(SdkEvent)}

        def official_sdk_typed() -> object:
            body, signature = pick()
            parsed = verify_and_parse_payload(
                raw_body=body.decode(), signature=signature, secret=SECRET
            )
            assert parsed is not None
            event = SdkEvent(**{k: v for k, v in parsed.items() if k in sdk_fields})
            return getattr(event, "as_" + event.event.replace(".", "_"))()

        candidates["official commet-sdk: verify_and_parse + typed data"] = official_sdk_typed

    try:
        from svix.webhooks import Webhook as SvixWebhook
    except ImportError:
        print("svix not installed: skipping its baseline")
    else:
        import base64

        svix_secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
        svix = SvixWebhook(svix_secret)
        now = datetime.now(timezone.utc)
        svix_requests = []
        for body, _ in bodies:
            signature = svix.sign("msg_1", now, body.decode())
            svix_requests.append(
                (
                    body,
                    {
                        "svix-id": "msg_1",
                        "svix-timestamp": str(int(now.timestamp())),
                        "svix-signature": signature,
                    },
                )
            )
        pick_svix = cycle(svix_requests)

        def svix_verify() -> object:
            body, headers = pick_svix()
            svix.verify(body, headers)
            return json.loads(body)

        candidates["svix: Webhook.verify + json.loads (untyped)"] = svix_verify
    return candidates


def large_body_candidates() -> dict[str, Callable[[], object]]:
    payload = sample_event("invoice.created", data={"blob": "x" * (1024 * 1024 - 200)})
    body, headers = signed_request(payload, SECRET)
    signature = headers["X-Commet-Signature"]
    key = SECRET.encode()
    keys = SecretKeys(SECRET)
    print(f"large body: {len(body)} bytes")

    def bare_hashlib() -> object:
        return hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest(), signature)

    def ours_verify() -> object:
        return keys.verify(body, signature)

    return {"floor: hmac.new + compare_digest": bare_hashlib, "ours: verify": ours_verify}


def report(title: str, candidates: dict[str, Callable[[], object]], calls: int) -> dict[str, float]:
    print(f"\n## {title}")
    results = {name: best_per_call(fn, calls) for name, fn in candidates.items()}
    base_name = next(iter(results))
    base = results[base_name]
    print(f"{'candidate':<58} {'us/call':>10} {'x floor':>8}")
    for name, seconds in results.items():
        print(f"{name:<58} {seconds * 1e6:>10.2f} {seconds / base:>8.2f}")
    return results


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        description=(
            "Measure verify + parse cost per event and the signature check of a 1 MiB body, "
            "each as a ratio against a baseline measured in the same run."
        )
    ).parse_args(argv)
    print(f"python {sys.version.split()[0]}, best of {ROUNDS} rounds")
    per_event = report(
        f"verify + parse, per event ({len(EVENT_TYPES)} event types, round robin)", per_event_candidates(), 20_000
    )
    ours = per_event["ours: construct_event (typed)"]
    floor = per_event["floor: hmac + compare_digest + json.loads (untyped)"]
    sdk = per_event.get("official commet-sdk: verify_and_parse + typed data")
    print(f"\nconstruct_event / floor = {ours / floor:.2f} (target <= 0.80)")
    if sdk:
        print(f"construct_event / official SDK typed = {ours / sdk:.2f} (target <= 0.33)")
    large = report("1 MiB body: signature check", large_body_candidates(), 200)
    values = list(large.values())
    print(f"\nverify / hashlib on 1 MiB = {values[1] / values[0]:.3f} (target <= 1.10)")
    _ = statistics  # kept for callers that extend this report
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
