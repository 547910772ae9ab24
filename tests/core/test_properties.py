"""Property tests: hostile input never escapes as a foreign exception or runs a handler."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commet_webhooks import WebhookError, Webhooks, construct_event, sign, verify
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_property_tests"
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def envelope_like() -> st.SearchStrategy[dict[str, Any]]:
    """Envelopes with real event names and random (often wrong) fields."""
    return st.fixed_dictionaries(
        {
            "event": st.sampled_from([*EVENT_TYPES, "trial.started", ""]) | st.text(max_size=10),
            "timestamp": st.sampled_from(["2026-01-01T00:00:00Z", "nope", "2026-01-01"])
            | json_values,
            "organizationId": st.text(max_size=5) | json_values,
            "data": st.dictionaries(st.text(max_size=12), json_values, max_size=8) | json_values,
        },
        optional={"id": json_values, "mode": json_values, "apiVersion": json_values},
    )


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.calls.append(event)


def make_webhooks(recorder: Recorder) -> Webhooks:
    kwargs = {spec.handler_keyword: recorder for spec in EVENT_TYPES.values()}
    return Webhooks(SECRET, on_payload=recorder, **kwargs)


@FAST
@given(
    payload=st.binary(max_size=512),
    signature=st.none() | st.text(max_size=80) | st.binary(max_size=80),
)
def test_verify_never_raises(payload: bytes, signature: Any) -> None:
    assert verify(payload, signature, SECRET) in (True, False)


@FAST
@given(
    payload=st.binary(max_size=512),
    headers=st.dictionaries(st.text(max_size=30), st.text(max_size=100), max_size=6),
)
def test_random_bytes_and_headers_never_run_a_handler(
    payload: bytes, headers: dict[str, str]
) -> None:
    recorder = Recorder()
    response = make_webhooks(recorder).handle_sync(payload, headers)
    assert response.status == 403
    assert recorder.calls == []


@FAST
@given(envelope=envelope_like())
def test_random_signed_json_is_handled_or_rejected_cleanly(envelope: dict[str, Any]) -> None:
    recorder = Recorder()
    body, headers = signed_request(json.dumps(envelope).encode(), SECRET)
    response = make_webhooks(recorder).handle_sync(body, headers)
    assert response.status in (200, 400)
    if response.status == 400:
        assert recorder.calls == []
    else:
        assert recorder.calls and all(c.event == envelope["event"] for c in recorder.calls)
    with contextlib.suppress(WebhookError):
        construct_event(body, headers["X-Commet-Signature"], SECRET)


@FAST
@given(
    name=st.sampled_from(list(EVENT_TYPES)),
    position=st.integers(min_value=0),
    bit=st.integers(0, 7),
)
def test_one_bit_flip_of_a_valid_body_is_rejected(name: str, position: int, bit: int) -> None:
    recorder = Recorder()
    body, headers = signed_request(sample_event(name), SECRET)
    flipped = bytearray(body)
    flipped[position % len(body)] ^= 1 << bit
    response = make_webhooks(recorder).handle_sync(bytes(flipped), headers)
    assert response.status == 403 and recorder.calls == []


@FAST
@given(
    name=st.sampled_from(list(EVENT_TYPES)),
    position=st.integers(0, 63),
    char=st.sampled_from("0123456789abcdef"),
)
def test_altered_signature_is_rejected(name: str, position: int, char: str) -> None:
    body, headers = signed_request(sample_event(name), SECRET)
    signature = headers["X-Commet-Signature"]
    altered = signature[:position] + char + signature[position + 1 :]
    recorder = Recorder()
    response = make_webhooks(recorder).handle_sync(body, {**headers, "X-Commet-Signature": altered})
    assert (response.status == 200) == (altered == signature)
    assert bool(recorder.calls) == (altered == signature)


@FAST
@given(depth=st.integers(1, 100_000))
def test_deeply_nested_json_is_a_clean_answer(depth: int) -> None:
    nested = (
        b'{"event":"x.y","timestamp":"2026-01-01T00:00:00Z","organizationId":"o","data":'
        + b"[" * depth
        + b"]" * depth
        + b"}"
    )
    recorder = Recorder()
    response = make_webhooks(recorder).handle_sync(
        nested, {"x-commet-signature": sign(nested, SECRET)}
    )
    assert response.status in (200, 400)


def test_huge_numbers_and_duplicate_keys() -> None:
    recorder = Recorder()
    webhooks = make_webhooks(recorder)
    huge = json.dumps(sample_event("payment.received")).replace(
        '"grossAmount": 9900', '"grossAmount": ' + "9" * 400
    )
    response = webhooks.handle_sync(*signed_request(huge.encode(), SECRET))
    # An authentic integer is accepted as the exact Python int, never a float.
    assert response.status == 200
    assert recorder.calls[0].data.gross_amount == int("9" * 400)
    dup = b'{"event":"trial.x","event":"trial.y","timestamp":"2026-01-01T00:00:00Z","organizationId":"o","data":{}}'
    response = webhooks.handle_sync(*signed_request(dup, SECRET))
    assert response.status in (200, 400)
