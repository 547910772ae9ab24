"""The same behaviour from every adapter, through a real server and real HTTP.

Each test runs once per row of the adapter table in ``conftest.py``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Iterator

import httpx
import pytest

from commet_webhooks import SubscriptionCreated, UnknownEvent, sign
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.testing import sample_event, signed_request

FORM = "application/x-www-form-urlencoded"


def post(
    client: httpx.Client, url: str, content: bytes | Iterable[bytes], headers: dict[str, str]
) -> httpx.Response:
    return client.post(url, content=content, headers=headers)


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_each_event_type_reaches_its_typed_class(server, client, webhook_secret, event_type):
    envelope = sample_event(event_type)
    body, headers = signed_request(envelope, webhook_secret)

    response = post(client, server.url, body, headers)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": True}
    assert response.headers["content-type"] == "application/json"
    expected = EVENT_TYPES[event_type].event_class
    specific = server.recorder.specific[envelope["id"]]
    assert type(specific) is expected
    assert type(server.recorder.catch_all[envelope["id"]]) is expected
    assert specific.raw == envelope


def test_unmodelled_event_type_reaches_only_the_catch_all(server, client, webhook_secret):
    envelope = sample_event("loyalty.points_awarded", data={"awardedAt": "2026-12-01T00:00:00Z"})
    body, headers = signed_request(envelope, webhook_secret)

    response = post(client, server.url, body, headers)

    assert response.status_code == 200, response.text
    event = server.recorder.catch_all[envelope["id"]]
    assert isinstance(event, UnknownEvent)
    assert event.data == {"awardedAt": "2026-12-01T00:00:00Z"}
    assert envelope["id"] not in server.recorder.specific


def test_missing_signature_is_403(server, client, webhook_secret):
    envelope = sample_event("payment.failed")
    body, headers = signed_request(envelope, webhook_secret)
    del headers["X-Commet-Signature"]

    response = post(client, server.url, body, headers)

    assert response.status_code == 403
    assert response.json() == {"received": False, "error": "Invalid signature"}
    assert envelope["id"] not in server.recorder.catch_all


def test_wrong_signature_is_403_and_never_echoes_the_secret(server, client, webhook_secret):
    envelope = sample_event("subscription.activated")
    body, headers = signed_request(envelope, "whsec_some_other_secret")

    response = post(client, server.url, body, headers)

    assert response.status_code == 403
    assert response.json()["error"] == "Invalid signature"
    assert webhook_secret not in response.text
    assert envelope["id"] not in server.recorder.catch_all


@pytest.mark.parametrize("garbage", [b"not json at all", b'{"event": 1}', b"[]"])
def test_signed_garbage_is_400(server, client, webhook_secret, garbage):
    body, headers = signed_request(garbage, webhook_secret)

    response = post(client, server.url, body, headers)

    assert response.status_code == 400
    assert response.json()["error"] == "Invalid payload"
    assert webhook_secret not in response.text


def test_form_content_type_still_verifies_the_raw_bytes(server, client, webhook_secret):
    # Pretty-printed, non-ASCII, odd key order: any re-encoding would break the signature.
    envelope = sample_event("subscription.canceled", cancel_reason="trop cher — ça coûte")
    body = json.dumps(envelope, indent=3, ensure_ascii=False, sort_keys=True).encode()
    _, headers = signed_request(body, webhook_secret, headers={"Content-Type": FORM})

    response = post(client, server.url, body, headers)

    assert response.status_code == 200, response.text
    event = server.recorder.specific[envelope["id"]]
    assert event.data.cancel_reason == "trop cher — ça coûte"


def test_form_encoded_body_is_verified_not_parsed_as_a_form(server, client, webhook_secret):
    # Signed over its raw bytes it passes verification (not 403), then is no envelope (400).
    body, headers = signed_request(
        b"event=payment.failed&data=x", webhook_secret, headers={"Content-Type": FORM}
    )

    response = post(client, server.url, body, headers)

    assert response.status_code == 400
    assert response.json()["error"] == "Invalid payload"


def _padded_to(size: int, webhook_secret: str) -> tuple[str, bytes, dict[str, str]]:
    envelope = sample_event("invoice.created")
    body = json.dumps(envelope).encode()
    body += b" " * (size - len(body))  # JSON allows trailing whitespace
    _, headers = signed_request(body, webhook_secret)
    return envelope["id"], body, headers


def _chunks(body: bytes, size: int = 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_body_of_exactly_the_limit_is_accepted(server, client, webhook_secret, body_limit):
    event_id, body, headers = _padded_to(body_limit, webhook_secret)
    assert post(client, server.url, body, headers).status_code == 200
    event_id, body, headers = _padded_to(body_limit, webhook_secret)
    assert post(client, server.url, _chunks(body), headers).status_code == 200  # chunked
    assert event_id in server.recorder.specific


def test_declared_content_length_over_the_limit_is_413(server, client, webhook_secret, body_limit):
    event_id, body, headers = _padded_to(body_limit + 1, webhook_secret)

    response = post(client, server.url, body, headers)

    assert response.status_code == 413
    assert response.json() == {"received": False, "error": "Payload too large"}
    assert event_id not in server.recorder.catch_all


def test_chunked_body_over_the_limit_is_413(server, client, webhook_secret, body_limit):
    event_id, body, headers = _padded_to(body_limit + 2048, webhook_secret)

    response = post(client, server.url, _chunks(body), headers)  # no Content-Length

    assert response.status_code == 413
    assert event_id not in server.recorder.catch_all


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_are_405_with_allow_post(server, client, method):
    response = client.request(method, server.url)

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["received"] is False


def test_head_is_405_with_allow_post(server, client):
    response = client.head(server.url)

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


# ------------------------------------------------- the body is never read past the limit
# These hold the request open so that only an adapter that answers without waiting
# for the rest of the body can pass. Raw sockets: httpx always sends the whole body.


def _exchange(host_port: tuple[str, int], head: bytes, body: bytes) -> tuple[int, dict[str, str]]:
    """Send ``head`` and ``body`` without finishing the request; read the answer."""
    with socket.create_connection(host_port, timeout=30) as sock:
        sock.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    status_line, *header_lines = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


def _head(server, extra: str) -> bytes:
    host, port = server.host_port
    return (
        f"POST {server.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"X-Commet-Signature: {'0' * 64}\r\nConnection: close\r\n{extra}\r\n"
    ).encode("latin-1")


def test_huge_declared_length_is_refused_before_any_body_arrives(streaming_server):
    status, _ = _exchange(
        streaming_server.host_port, _head(streaming_server, "Content-Length: 1000000000\r\n"), b""
    )

    assert status == 413


def test_unfinished_chunked_body_is_refused_once_past_the_limit(streaming_server, body_limit):
    payload = b"x" * (body_limit + 4096)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in _chunks(payload))  # no final 0-chunk

    status, _ = _exchange(
        streaming_server.host_port,
        _head(streaming_server, "Transfer-Encoding: chunked\r\n"),
        chunked,
    )

    assert status == 413


def test_signature_of_other_bytes_is_403(server, client, webhook_secret):
    envelope = sample_event("payment.received")
    body = json.dumps(envelope).encode()
    signature = sign(body + b" ", webhook_secret)
    headers = {"Content-Type": "application/json", "X-Commet-Signature": signature}

    assert post(client, server.url, body, headers).status_code == 403
    assert envelope["id"] not in server.recorder.catch_all


def test_a_client_leaving_mid_body_leaves_the_server_serving(server, client, webhook_secret):
    with socket.create_connection(server.host_port, timeout=30) as sock:
        sock.sendall(_head(server, "Content-Length: 5000\r\n") + b'{"event": "subscr')

    envelope = sample_event("subscription.created")
    body, headers = signed_request(envelope, webhook_secret)
    response = post(client, server.url, body, headers)

    assert response.status_code == 200
    assert type(server.recorder.specific[envelope["id"]]) is SubscriptionCreated


# ------------------------------------------- more than one signature header


def _raw_post(server, header_lines: list[str], body: bytes) -> tuple[int, bytes]:
    """POST ``body`` with ``header_lines`` written as given (repeats kept); (status, body)."""
    host, port = server.host_port
    head = f"POST {server.path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
    head += "".join(f"{line}\r\n" for line in header_lines)
    head += f"Content-Length: {len(body)}\r\n\r\n"
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + body)
        received = b""
        while data := sock.recv(65536):
            received += data
    head_part, _, answer = received.partition(b"\r\n\r\n")
    status = int(head_part.split(b"\r\n", 1)[0].split()[1])
    if b"transfer-encoding: chunked" in head_part.lower():  # Django's ASGI answers chunked
        decoded = b""
        while answer:
            size, _, rest = answer.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            decoded, answer = decoded + rest[:n], rest[n + 2 :]
        answer = decoded
    return status, answer


@pytest.mark.parametrize("order", ["valid-first", "valid-last", "valid-twice"])
def test_more_than_one_signature_header_is_the_same_403_everywhere(
    server, webhook_secret, order
):
    # Servers disagree on repeated headers (ASGI passes both, aiohttp's get() keeps the
    # first, WSGI and Django join them): every adapter refuses the request alike.
    envelope = sample_event("payment.received")
    body = json.dumps(envelope).encode()
    valid, other = sign(body, webhook_secret), sign(body + b" ", webhook_secret)
    signatures = {
        "valid-first": [valid, other],
        "valid-last": [other, valid],
        "valid-twice": [valid, valid],
    }[order]
    lines = ["Content-Type: application/json"]
    lines += [f"X-Commet-Signature: {signature}" for signature in signatures]

    status, answer = _raw_post(server, lines, body)

    assert status == 403, answer
    assert json.loads(answer) == {"received": False, "error": "Invalid signature"}
    assert envelope["id"] not in server.recorder.catch_all
    # The same request with one signature header is accepted.
    status, answer = _raw_post(server, [lines[0], f"X-Commet-Signature: {valid}"], body)
    assert status == 200, answer
    assert envelope["id"] in server.recorder.specific
