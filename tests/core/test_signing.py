"""sign / verify / construct_event / verify_and_parse / parse_event."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from commet_webhooks import (
    PayloadError,
    SignatureVerificationError,
    SubscriptionActivated,
    WebhookError,
    construct_event,
    parse_event,
    sign,
    verify,
    verify_and_parse,
)
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_signing_tests"
BODY = b'{"event":"payment.failed","timestamp":"2026-01-01T00:00:00Z"}'


def reference_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_sign_is_lowercase_hex_hmac_over_raw_bytes_with_whole_secret() -> None:
    signature = sign(BODY, SECRET)
    assert signature == reference_signature(BODY, SECRET)
    assert signature == signature.lower() and len(signature) == 64
    # The whsec_ prefix is part of the key.
    assert signature != reference_signature(BODY, SECRET.removeprefix("whsec_"))


def test_sign_accepts_str_as_utf8() -> None:
    text = '{"name":"Zoë ☃"}'
    assert sign(text, SECRET) == reference_signature(text.encode("utf-8"), SECRET)


def test_sign_refuses_empty_secret() -> None:
    with pytest.raises(ValueError):
        sign(BODY, "")


def test_verify_round_trip_bytes_and_str() -> None:
    signature = sign(BODY, SECRET)
    assert verify(BODY, signature, SECRET)
    assert verify(BODY.decode(), signature, SECRET)
    assert verify(BODY, signature.upper(), SECRET)  # hex case is not meaningful
    assert verify(BODY, f"  {signature}\n", SECRET)  # header whitespace


def test_verify_rejects_other_body_or_secret() -> None:
    signature = sign(BODY, SECRET)
    assert not verify(BODY + b" ", signature, SECRET)
    assert not verify(BODY, signature, SECRET + "x")


def test_verify_supports_rotation() -> None:
    old, new = "whsec_old", "whsec_new"
    assert verify(BODY, sign(BODY, old), [new, old])
    assert verify(BODY, sign(BODY, new), (new, old))
    assert not verify(BODY, sign(BODY, "whsec_other"), [new, old])


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "abc",
        "v1",
        "v1,",
        "sha256=" + "0" * 64,
        "0" * 63,
        "0" * 65,
        "z" * 64,
        "é" * 64,
        "ü" * 32,
        "\x00" * 64,
        "t=1,v1=abc",
        b"\xff" * 64,
        12345,
        ["a" * 64],
    ],
)
def test_verify_never_raises_on_malformed_signature(signature: object) -> None:
    assert verify(BODY, signature, SECRET) is False  # type: ignore[arg-type]


def test_verify_prefixed_form_of_valid_signature_is_rejected() -> None:
    signature = sign(BODY, SECRET)
    assert not verify(BODY, "sha256=" + signature, SECRET)
    assert not verify(BODY, "v1," + signature, SECRET)


@pytest.mark.parametrize("secret", ["", "   ", [], [""], None, 42, [None]])
def test_verify_with_unusable_secret_is_false_not_an_error(secret: object) -> None:
    assert verify(BODY, sign(BODY, SECRET), secret) is False  # type: ignore[arg-type]


def test_verify_handles_invalid_utf8_body_and_non_bytes() -> None:
    raw = b"\xff\xfe\x00garbage"
    assert verify(raw, sign(raw, SECRET), SECRET)
    assert verify(12, "0" * 64, SECRET) is False  # type: ignore[arg-type]


def test_construct_event_returns_typed_event() -> None:
    body, headers = signed_request(sample_event("subscription.activated"), SECRET)
    event = construct_event(body, headers["X-Commet-Signature"], SECRET)
    assert isinstance(event, SubscriptionActivated)


def test_construct_event_errors_say_what_is_wrong_and_hide_secret() -> None:
    body, _headers = signed_request(sample_event("payment.failed"), SECRET)
    with pytest.raises(SignatureVerificationError, match="missing") as missing:
        construct_event(body, None, SECRET)
    with pytest.raises(SignatureVerificationError, match="does not match") as wrong:
        construct_event(body, "0" * 64, SECRET)
    bad_body, bad_headers = signed_request(b'{"event": 1}', SECRET)
    with pytest.raises(PayloadError) as payload:
        construct_event(bad_body, bad_headers["X-Commet-Signature"], SECRET)
    for exc in (missing.value, wrong.value, payload.value):
        assert isinstance(exc, WebhookError)
        assert SECRET not in str(exc) and SECRET not in repr(exc)


def test_construct_event_with_empty_secret_is_value_error() -> None:
    with pytest.raises(ValueError):
        construct_event(BODY, "0" * 64, "")


def test_verify_and_parse_returns_none_on_any_failure() -> None:
    body, headers = signed_request(sample_event("invoice.created"), SECRET)
    assert verify_and_parse(body, headers["X-Commet-Signature"], SECRET) is not None
    assert verify_and_parse(body, None, SECRET) is None
    assert verify_and_parse(body, "nope", SECRET) is None
    assert verify_and_parse(body, headers["X-Commet-Signature"], "") is None
    garbage, garbage_headers = signed_request(b"not json", SECRET)
    assert verify_and_parse(garbage, garbage_headers["X-Commet-Signature"], SECRET) is None


def test_parse_event_skips_signature() -> None:
    event = parse_event(signed_request(sample_event("payment.received"), SECRET)[0])
    assert event.event == "payment.received"
    with pytest.raises(PayloadError):
        parse_event(b"{}")
    with pytest.raises(PayloadError):
        parse_event(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "secret",
    ["whsec_x", "whsec_" + "k" * 58, "whsec_" + "k" * 59, "whsec_" + "long" * 40, "whsec_ünï☃"],
)
def test_prepared_key_matches_stdlib_hmac_for_every_key_length(secret: str) -> None:
    for body in (b"", b"x", BODY, b"\x00" * 1000):
        expected = reference_signature(body, secret)
        assert sign(body, secret) == expected
        assert verify(body, expected, secret)
        assert verify(body, expected, ["whsec_other", secret])
