"""Hypothesis strategies for hostile webhook requests, shared by the hardening tests."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import strategies as st

from commet_webhooks import sign
from commet_webhooks.events import EVENT_TYPES

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = (
    b"host", b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect",
    b"te", b"trailer", b"keep-alive",
)  # fmt: skip
"""Framing headers the transports set themselves; random lines leave them alone."""
COMMET_HEADERS = ["x-commet-signature", "x-commet-event", "x-commet-timestamp", "x-commet-event-id"]
_TOKEN_CHARS = string.ascii_letters + string.digits + "-!#$%&'*+.^`|~"
# Header value bytes every HTTP stack can carry: visible ASCII, tab, and latin-1 high bytes.
_VALUE_BYTES = [b for b in range(256) if b == 9 or 0x20 <= b <= 0x7E or b >= 0x80]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)


def random_case(names: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``names`` with each letter upper- or lower-cased at random."""
    return st.builds(
        lambda name, mask: "".join(
            c.upper() if mask >> (i % 62) & 1 else c.lower() for i, c in enumerate(name)
        ),
        names,
        st.integers(0, 2**62),
    )


header_names = random_case(st.sampled_from(COMMET_HEADERS)) | st.text(
    _TOKEN_CHARS, min_size=1, max_size=24
)


def header_values(max_size: int = 65_536) -> st.SearchStrategy[bytes]:
    """Short random values, and now and then one byte repeated up to ``max_size`` times."""
    short = st.lists(st.sampled_from(_VALUE_BYTES), max_size=80).map(bytes)
    huge = st.builds(
        lambda byte, n: bytes([byte]) * n,
        st.sampled_from(_VALUE_BYTES),
        st.integers(256, max_size),
    )
    return st.one_of(short, short, short, huge)


content_encodings = st.tuples(
    st.just(b"content-encoding"), st.sampled_from([b"gzip", b"deflate", b"br", b"zstd", b"x"])
)
"""Encodings some servers undo before the application sees the body."""


def random_headers(max_value: int = 65_536) -> st.SearchStrategy[Headers]:
    """Header lines with random (often repeated) names and latin-1 values."""
    line = st.tuples(header_names.map(lambda n: n.encode("ascii")), header_values(max_value))
    return st.lists(line | content_encodings, max_size=6)


methods = st.sampled_from(
    ["POST", "POST", "POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "post", "Post"]
) | st.text(string.ascii_uppercase, min_size=1, max_size=10).filter(
    lambda m: m not in ("CONNECT", "TRACE")
)


# ---------------------------------------------------------------- bodies


def _nested(depth: int, kind: str) -> bytes:
    opener, closer = (b"[", b"]") if kind == "list" else (b'{"a":', b"}")
    inner = opener * depth + b"1" + closer * depth
    return (
        b'{"event":"subscription.updated","timestamp":"2026-01-01T00:00:00Z",'
        b'"organizationId":"org","data":' + inner + b"}"
    )


def deep_nesting(max_depth: int = 30_000) -> st.SearchStrategy[bytes]:
    """Signed-able envelopes whose ``data`` nests lists or objects up to ``max_depth`` deep."""
    return st.builds(_nested, st.integers(1, max_depth), st.sampled_from(["list", "dict"]))


huge_numbers = st.builds(
    lambda name, digits, exponent: (
        json.dumps(_sample(name))
        .replace('"customerId": "user_123"', f'"customerId": {digits}{exponent}')
        .encode()
    ),
    st.sampled_from(list(EVENT_TYPES)),
    st.integers(1, 6000).map(lambda n: "9" * n) | st.just("-" + "1" * 5000),
    st.sampled_from(["", "e999", ".5e-999", "E+308"]),
)

duplicate_keys = st.builds(
    lambda first, second, key: (
        b'{"event":"' + first.encode() + b'","timestamp":"2026-01-01T00:00:00Z",'
        b'"organizationId":"o","' + key.encode() + b'":"' + second.encode() + b'","data":{},'
        b'"event":"' + second.encode() + b'","data":{"subscriptionId":"s"}}'
    ),
    st.sampled_from([*EVENT_TYPES, "loyalty.points_awarded"]),
    st.sampled_from([*EVENT_TYPES, "x.y"]),
    st.sampled_from(["event", "id", "timestamp", "organizationId", "mode"]),
)


def _inject(body: bytes, position: int, garbage: bytes) -> bytes:
    at = position % (len(body) + 1)
    return body[:at] + garbage + body[at:]


non_utf8 = st.builds(
    _inject,
    st.sampled_from(list(EVENT_TYPES)).map(lambda name: json.dumps(_sample(name)).encode()),
    st.integers(0),
    st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80", b'\\ud800"', b"\x00"])
    | st.binary(min_size=1, max_size=8),
)

envelopes = st.fixed_dictionaries(
    {
        "event": st.sampled_from([*EVENT_TYPES, "loyalty.points_awarded", ""]) | st.text(max_size=10),
        "timestamp": st.sampled_from(["2026-01-01T00:00:00Z", "nope"]) | json_values,
        "organizationId": st.text(max_size=5) | json_values,
        "data": st.dictionaries(st.text(max_size=12), json_values, max_size=6) | json_values,
    },
    optional={"id": json_values, "mode": json_values, "apiVersion": json_values},
).map(lambda envelope: json.dumps(envelope).encode())

hostile_json = st.one_of(
    envelopes, json_values.map(lambda v: json.dumps(v).encode()), deep_nesting(), huge_numbers,
    duplicate_keys, non_utf8,
)  # fmt: skip


def _sample(name: str) -> dict[str, Any]:
    from commet_webhooks.testing import sample_event

    return sample_event(name)


def signature_line(body: bytes, secret: str) -> tuple[bytes, bytes]:
    return (b"x-commet-signature", sign(body, secret).encode())


def signatures_in(headers: Headers) -> set[str]:
    """Every signature a receiver could have read from ``headers`` (repeats joined too)."""
    values = [v.decode("latin-1") for k, v in headers if k.lower() == b"x-commet-signature"]
    candidates = {*values, ",".join(values), ", ".join(values)}
    return {c.strip().lower() for c in candidates}
