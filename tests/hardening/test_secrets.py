"""Secrets never leak: not in ``repr``/``str``, exceptions, logs, stdout/stderr or CLI output.

Every secret below carries the marker ``LEAKCHECK`` (passwords: ``hunter2pass``); a
test fails if a marker shows up anywhere it captured, even partly redacted.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from commet_webhooks import (
    PayloadError,
    SignatureVerificationError,
    WebhookError,
    Webhooks,
    construct_event,
    parse_event,
    sign,
    verify_and_parse,
)
from commet_webhooks.stores import MemoryStore
from commet_webhooks.testing import sample_event, signed_request
from support import services
from support.net import free_port
from support.servers import serve_asgi

MARKERS = ("LEAKCHECK", "hunter2pass")
SECRET = "whsec_" + "LEAKCHECK" + "_f00dfeed"
OLD_SECRET = "whsec_" + "LEAKCHECK" + "_0ld5ecret"
API_KEY = "ck_live_" + "LEAKCHECK" + "_c0ffee"
PASSWORD = "hunter2pass"
# The test services (COMMET_TEST_REDIS_URL / COMMET_TEST_POSTGRES_URL), with a password added.
REDIS_URL = services.redis_url(db=15, password=PASSWORD)
POSTGRES_DSN = services.postgres_url(password=PASSWORD)


def texts_of(obj: object) -> Iterator[str]:
    """``repr``/``str`` of ``obj``; for an exception also its args and its displayed chain."""
    seen: set[int] = set()
    pending = [obj]
    while pending:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield repr(item)
        yield str(item)
        if isinstance(item, BaseException):
            yield from (repr(arg) for arg in item.args)
            # The chain a traceback or an error tracker shows: the cause, else the
            # context unless suppressed (``raise ... from None``).
            pending.append(item.__cause__)
            if not item.__suppress_context__:
                pending.append(item.__context__)


def assert_clean(*sources: object | Iterable[str]) -> None:
    for source in sources:
        texts = [source] if isinstance(source, str) else list(texts_of(source))
        for text in texts:
            for marker in MARKERS:
                assert marker not in text, f"secret marker {marker!r} leaked: {text[:500]!r}"


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger, at DEBUG, formatted with tracebacks."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_output_clean(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = capsys.readouterr()
    records = [r.getMessage() for r in caplog.records]
    assert_clean(caplog.text, out, err, *records)


# ------------------------------------------------------------------ receiving


def test_webhooks_and_adapters_never_show_the_secrets(
    everything_logged: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from commet_webhooks.asgi import WebhookApp as ASGIApp
    from commet_webhooks.wsgi import WebhookApp as WSGIApp

    webhooks = Webhooks([SECRET, OLD_SECRET], idempotency_store=MemoryStore())
    for obj in (webhooks, ASGIApp(webhooks), WSGIApp(webhooks), webhooks.__dict__):
        assert_clean(obj)
    print(webhooks, ASGIApp(webhooks))
    logging.getLogger("hardening").debug("configured %r", webhooks)
    assert_output_clean(everything_logged, capsys)


def test_every_rejection_and_failure_keeps_the_secret_out(
    everything_logged: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    reported: list[BaseException] = []
    webhooks = Webhooks(SECRET, retry_on_handler_error=True, idempotency_store=MemoryStore())

    @webhooks.on_error
    def report(exc: BaseException, subject: object) -> None:
        reported.append(exc)

    @webhooks.on("payment.failed")
    def explode(event: Any) -> None:
        raise RuntimeError("handler blew up")

    body, headers = signed_request(sample_event("payment.failed"), SECRET)
    requests = [
        (body, {}),  # no signature
        (body, {**headers, "X-Commet-Signature": "0" * 64}),  # wrong signature
        (body, {**headers, "X-Commet-Signature": sign(body, "whsec_other")}),
        (body, {**headers, "X-Commet-Signature": "é" * 100}),  # not even hex
        *(signed_request(garbage, SECRET) for garbage in (b"[1]", b"\xff\xfe", b"{}", b"null")),
        (body, headers),  # the handler raises: 500 for a retry
        signed_request(b"x" * 2_000_000, SECRET),  # over the body limit
    ]
    answers = [webhooks.handle_sync(b, h) for b, h in requests]
    assert [a.status for a in answers] == [403, 403, 403, 403, 400, 400, 400, 400, 500, 413]
    assert reported, "on_error saw nothing"
    assert_clean(*answers, *(a.body.decode() for a in answers), *reported)
    assert_output_clean(everything_logged, capsys)


def test_library_exceptions_never_carry_the_secret(
    everything_logged: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    body, headers = signed_request(sample_event("invoice.created"), SECRET)
    signature = headers["X-Commet-Signature"]
    raised: list[BaseException] = []
    attempts: list[tuple[Any, ...]] = [
        (body, None, SECRET),
        (body, "", SECRET),
        (body, "zz", SECRET),
        (body, signature, OLD_SECRET),
        (body, signature, [OLD_SECRET, "whsec_" + "LEAKCHECK"]),
        (body + b" ", signature, SECRET),
        (b"not json", sign(b"not json", SECRET), SECRET),
        (b'{"event": 1}', sign(b'{"event": 1}', SECRET), SECRET),
        (b"[1]", sign(b"[1]", SECRET), [OLD_SECRET, SECRET]),
    ]
    for raw, sig, secret in attempts:
        with pytest.raises(WebhookError) as caught:
            construct_event(raw, sig, secret)
        assert isinstance(caught.value, (SignatureVerificationError, PayloadError))
        raised.append(caught.value)
        assert verify_and_parse(raw, sig, secret) is None
    with pytest.raises(PayloadError) as caught:
        parse_event(b"\xff" + SECRET.encode())
    raised.append(caught.value)
    for bad_config in ("", [SECRET, ""], [SECRET, 3], {"secret": SECRET}):
        with pytest.raises((ValueError, TypeError)) as config_error:
            Webhooks(bad_config)  # type: ignore[arg-type]
        raised.append(config_error.value)
    assert_clean(*raised)
    assert_output_clean(everything_logged, capsys)


# --------------------------------------------------------------------- stores


def _closed_port() -> int:
    port: int = free_port()
    return port


def _exercise(store: Any) -> list[BaseException]:
    """Claim, complete and release a key; return whatever was raised."""
    errors: list[BaseException] = []
    key = f"hardening-{uuid.uuid4().hex}"
    for call in (
        lambda: store.claim(key, "owner"),
        lambda: store.complete(key, "owner"),
        lambda: store.release(key, "owner"),
    ):
        try:
            call()
        except Exception as exc:
            errors.append(exc)
    return errors


@pytest.mark.redis
@pytest.mark.postgres
def test_stores_never_show_their_passwords(
    tmp_path: Path,
    everything_logged: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from commet_webhooks.stores.postgres import PostgresStore
    from commet_webhooks.stores.redis import RedisStore
    from commet_webhooks.stores.sqlite import SQLiteStore

    prefix = f"hardening-{uuid.uuid4().hex}:"
    schema = f"hardening_{uuid.uuid4().hex}"
    port = _closed_port()
    stores = [
        MemoryStore(),
        SQLiteStore(tmp_path / "keys.sqlite3"),
        RedisStore(REDIS_URL, prefix=prefix, timeout=2.0),
        RedisStore(f"redis://:{PASSWORD}@127.0.0.1:{port}/0", timeout=2.0),
        RedisStore(services.redis_url(db=15, user="user", password=PASSWORD), timeout=2.0),
        PostgresStore(POSTGRES_DSN, schema=schema, timeout=2.0),
        PostgresStore(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/test", timeout=2.0),
        PostgresStore(
            services.postgres_url(database=f"no_such_db_{uuid.uuid4().hex}", password=PASSWORD),
            timeout=2.0,
        ),
        PostgresStore(f"host=127.0.0.1 port={port} password={PASSWORD}", timeout=2.0),
    ]
    try:
        errors: list[BaseException] = []
        for store in stores:
            assert_clean(store, Webhooks(SECRET, idempotency_store=store))
            errors += _exercise(store)
            answer = Webhooks(SECRET, idempotency_store=store).handle_sync(
                *signed_request(sample_event("subscription.created"), SECRET)
            )
            assert answer.status in (200, 503)
            assert_clean(answer.body.decode())
        assert errors, "the unreachable stores raised nothing"
        for bad in (
            lambda: RedisStore("redis://:" + "hunter2pass" + "@127.0.0.1:notaport/0"),
            lambda: RedisStore("http://:" + "hunter2pass" + "@127.0.0.1:6379/0"),
            lambda: PostgresStore("postgresql://postgres:" + "hunter2pass" + "@[::1"),
            lambda: PostgresStore("password=" + "hunter2pass" + " = = nonsense"),
        ):
            with pytest.raises(Exception) as invalid:  # any error, as long as it is clean
                bad()
            errors.append(invalid.value)
        assert_clean(*errors)
    finally:
        for store in stores:
            close = getattr(store, "close", None)
            if close is not None:
                close()
        _drop_redis_prefix(prefix)
        _drop_postgres_schema(schema)
    assert_output_clean(everything_logged, capsys)


def _drop_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(services.redis_url(db=15))
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _drop_postgres_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(services.POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# --------------------------------------------------------------------- client


def test_client_never_shows_the_api_key(
    everything_logged: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from commet_webhooks import Commet

    client = Commet(
        api_key=API_KEY, base_url=f"http://127.0.0.1:{_closed_port()}", timeout=2.0, retries=1,
        backoff_base=0.01,
    )  # fmt: skip
    try:
        assert_clean(client, client.__dict__)
        raised: list[BaseException] = []
        for call in (
            lambda: client.subscriptions.get("user_123"),
            lambda: client.features.check(code="analytics", customer_id="user_123"),
        ):
            try:
                call()
            except Exception as exc:
                raised.append(exc)
        assert raised, "an unreachable API raised nothing"
        assert_clean(*raised)
    finally:
        client.close()
    assert_output_clean(everything_logged, capsys)


def test_async_client_never_shows_the_api_key_when_the_api_fails(
    everything_logged: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from commet_webhooks import AsyncCommet

    async def unavailable(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b'{"success":false,"code":"unavailable","message":"try later"}'
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def call(url: str) -> list[BaseException]:
        client = AsyncCommet(
            api_key=API_KEY, base_url=url, timeout=5.0, retries=1, backoff_base=0.01
        )
        assert_clean(client)
        try:
            await client.subscriptions.get("user_123")
        except Exception as exc:
            return [exc]
        finally:
            await client.close()
        return []

    with serve_asgi(unavailable, "") as url:
        raised = asyncio.run(call(url))
    assert raised, "a 503 from the API raised nothing"
    assert_clean(*raised)
    assert_output_clean(everything_logged, capsys)


# ------------------------------------------------------------------------ CLI


def run_cli(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> Any:
    """``python -m commet_webhooks ARGS``; asserts the secret shows nowhere in its output."""
    result = subprocess.run(
        [sys.executable, "-m", "commet_webhooks", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
    )
    assert_clean(result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace"))
    return result


def test_cli_sign_and_verify_never_print_the_secret(tmp_path: Path) -> None:
    body = signed_request(sample_event("payment.received"), SECRET)[0]
    payload = tmp_path / "body.json"
    payload.write_bytes(body)
    signature = sign(body, SECRET)

    signed = run_cli("sign", "--secret", SECRET, str(payload))
    assert signed.returncode == 0 and signed.stdout.decode().strip() == signature
    assert run_cli("sign", "-", stdin=body, env={"COMMET_WEBHOOK_SECRET": SECRET}).returncode == 0
    assert run_cli("sign", "--secret", SECRET, str(tmp_path / "missing.json")).returncode != 0

    good = run_cli(
        "verify", "--secret", OLD_SECRET, "--secret", SECRET, "--signature", signature, str(payload)
    )
    assert good.returncode == 0
    for wrong in ("0" * 64, "not-hex", "é" * 64, ""):
        bad = run_cli("verify", "--secret", SECRET, "--signature", wrong, str(payload))
        assert bad.returncode != 0


def test_cli_trigger_never_prints_the_secret() -> None:
    from commet_webhooks.asgi import WebhookApp

    receiver = Webhooks(SECRET)
    wrong_receiver = Webhooks("whsec_someone_else")
    args = ("trigger", "subscription.activated", "--secret", SECRET, "--timeout", "10")
    assert run_cli(*args, "--dry-run").returncode == 0
    assert run_cli(*args, "--url", f"http://127.0.0.1:{_closed_port()}/hook").returncode == 1
    assert run_cli(*args, "--set", "not-an-assignment", "--dry-run").returncode != 0
    with serve_asgi(WebhookApp(receiver), "/hook") as url:
        assert run_cli(*args, "--url", url).returncode == 0
    with serve_asgi(WebhookApp(wrong_receiver), "/hook") as url:
        refused = run_cli(*args, "--url", url)
        assert refused.returncode == 1 and b"403" in refused.stdout + refused.stderr


def test_cli_listen_never_prints_the_secret(tmp_path: Path) -> None:
    import httpx

    port = _closed_port()
    log = tmp_path / "listen.log"
    with log.open("wb") as output:
        listener = subprocess.Popen(
            [sys.executable, "-m", "commet_webhooks", "listen", "--port", str(port),
             "--secret", OLD_SECRET, "--secret", SECRET],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/webhooks/commet"
            with httpx.Client(timeout=10.0) as http:
                answers = [
                    _post_when_up(http, url, *request, listener)
                    for request in (
                        signed_request(sample_event("payment.failed"), SECRET),
                        signed_request(sample_event("payment.failed"), "whsec_someone_else"),
                    )
                ]
            assert [a.status_code for a in answers] == [200, 403]
            assert_clean(*(a.text for a in answers))
        finally:
            listener.terminate()
            listener.wait(30)
    printed = log.read_text("utf-8", "replace")
    assert "Listening" in printed
    assert_clean(printed)


def _post_when_up(http: Any, url: str, body: bytes, headers: dict[str, str], process: Any) -> Any:
    """POST once the listener accepts connections (for up to 30 s)."""
    import time

    import httpx

    deadline = time.monotonic() + 30
    while True:
        try:
            return http.post(url, content=body, headers=headers)
        except httpx.ConnectError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
