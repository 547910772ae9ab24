"""The emulator under hostile or unlucky conditions: old and future database files, a
database locked by another process, rebinding hosts, private targets, compressed
answers and oversized bodies."""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from commet_webhooks.emulator.storage import Storage
from commet_webhooks.emulator.storage.migrations import MIGRATIONS
from emulator.emulator_helpers import API_KEY, Emulator, ThreadedServer


def test_a_first_release_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])  # the first release's schema, user_version 0
    conn.execute(
        "INSERT INTO endpoints (id, url, events, secret, created_at) VALUES "
        "('ep_old', 'http://127.0.0.1:9/hook', '[]', 'whsec_old', '2026-01-01T00:00:00.000Z')"
    )
    conn.commit()
    conn.close()
    store = Storage(path)
    try:
        assert store.db.version == len(MIGRATIONS) == 3
        (endpoint,) = store.endpoints.page()
        assert (endpoint.id, endpoint.api_version, endpoint.seq) == ("ep_old", None, 1)
        assert store.clock.offset() == 0.0
    finally:
        store.close()
    again = Storage(path)  # opening a current file changes nothing
    assert again.db.version == 3
    again.close()


def test_a_database_from_a_newer_emulator_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "new.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ValueError, match="newer than this emulator"):
        Storage(path)


def test_delivery_survives_another_process_locking_the_database(
    make_emulator: Callable[..., Emulator], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    answers = [500]  # the first attempt fails; the retry is due while the file is locked
    seen: list[float] = []

    async def hook(request: Request) -> Response:
        seen.append(time.monotonic())
        return Response(b"{}", answers.pop(0) if answers else 200)

    receiver = ThreadedServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    db = str(tmp_path / "locked.db")
    try:
        emulator = make_emulator(db_path=db, time_scale=60)  # the 1 min retry after 1 s
        emulator.endpoint(receiver.url + "/hook")
        emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
        emulator.wait_delivery(lambda d: len(d["attempts"]) == 1)
        other = sqlite3.connect(db, isolation_level=None)
        with caplog.at_level(logging.ERROR, logger="commet_webhooks.emulator.delivery"):
            other.execute("BEGIN EXCLUSIVE")
            time.sleep(7)  # past the 5 s busy timeout
            other.execute("COMMIT")
            other.close()
            delivery = emulator.wait_delivery(lambda d: d["status"] == "succeeded", timeout=30)
        assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]
        assert any("database error" in r.getMessage() for r in caplog.records)
        # and the API is alive and answering after the lock
        assert emulator.client.get("/api/v1/plans").status_code == 200
    finally:
        receiver.stop()


def test_a_test_send_is_recorded_once_a_lock_taken_during_it_is_released(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    db = str(tmp_path / "test-send.db")
    locked, release = threading.Event(), threading.Event()

    def hold_the_file() -> None:
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(30)
        other.execute("COMMIT")
        other.close()

    async def hook(request: Request) -> Response:
        # Another process takes the file while the attempt is in flight, so the
        # attempt's result cannot be written when it comes back.
        threading.Thread(target=hold_the_file, daemon=True).start()
        await asyncio.to_thread(locked.wait, 10)
        return Response(b"{}", 200)

    receiver = ThreadedServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    try:
        emulator = make_emulator(db_path=db)
        created = emulator.api(
            "POST", "/api/v1/webhooks", json={"url": receiver.url + "/hook", "events": ["*"]}
        )
        # Past the 5 s busy timeout: the answer says how the attempt went all the same.
        timer = threading.Timer(6.5, release.set)
        timer.start()
        tested = emulator.api("POST", f"/api/v1/webhooks/{created['id']}/test")
        assert tested["success"] is True
        delivery = emulator.wait_delivery(
            lambda d: d["id"] == tested["deliveryId"] and d["status"] == "succeeded", timeout=30
        )
        assert [a["statusCode"] for a in delivery["attempts"]] == [200]
    finally:
        release.set()
        receiver.stop()


def test_an_api_write_during_a_long_lock_is_a_503_not_a_500(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    db = str(tmp_path / "busy.db")
    emulator = make_emulator(db_path=db)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        response = emulator.client.post("/api/v1/customers", json={"email": "a@example.com"})
    finally:
        other.execute("COMMIT")
        other.close()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_busy"
    assert response.headers["retry-after"] == "1"


def test_requests_for_a_foreign_host_are_refused(emulator: Emulator) -> None:
    for host in ("evil.example", "evil.example:8787", "127.0.0.1.evil.example"):
        response = emulator.client.get("/", headers={"host": host})
        assert response.status_code == 421, host
        api = emulator.client.get("/api/v1/plans", headers={"host": host})
        assert api.status_code == 421
    for host in ("localhost", f"127.0.0.1:{emulator.server.port}", "[::1]:8787"):
        assert emulator.client.get("/api/v1/plans", headers={"host": host}).status_code == 200


def test_private_and_link_local_targets_can_be_refused(
    make_emulator: Callable[..., Emulator],
) -> None:
    guarded = make_emulator(allow_private=False)
    for url in ("https://10.0.0.5/hook", "https://169.254.169.254/latest", "https://[fe80::1]/h"):
        response = guarded.client.post("/api/v1/webhooks", json={"url": url, "events": ["*"]})
        assert response.status_code == 400, url
        assert "private" in response.json()["error"]["message"]
    ok = guarded.client.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]}
    )
    assert ok.status_code == 201


def test_a_compressed_answer_is_never_inflated(make_emulator: Callable[..., Emulator]) -> None:
    bomb = gzip.compress(b"0" * (8 * 1024 * 1024))  # 8 MiB of zeros in a few KiB

    async def hook(request: Request) -> Response:
        return Response(bomb, 200, headers={"content-encoding": "gzip"})

    receiver = ThreadedServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    try:
        emulator = make_emulator()
        emulator.endpoint(receiver.url + "/hook")
        emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
        delivery = emulator.wait_delivery(lambda d: d["status"] == "succeeded")
        excerpt = delivery["attempts"][0]["response"]
        assert "0000000000" not in excerpt and len(excerpt) <= 500
    finally:
        receiver.stop()


def test_a_huge_declared_body_is_refused_before_it_is_read(emulator: Emulator) -> None:
    with socket.create_connection(("127.0.0.1", emulator.server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/customers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"x-api-key: {API_KEY}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{"
        )
        head = sock.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head[:200]


def test_a_streamed_body_past_the_cap_is_refused(emulator: Emulator) -> None:
    def chunks() -> object:
        for _ in range(40):
            yield b"x" * 65536

    response = emulator.client.post(
        "/api/v1/customers",
        content=chunks(),  # type: ignore[arg-type]
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert isinstance(response.json()["error"], dict)
    assert httpx.codes.is_client_error(response.status_code)
