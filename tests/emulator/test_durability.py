"""A SIGKILLed emulator resumes its pending deliveries after a restart."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from commet_webhooks import verify
from emulator.emulator_helpers import API_KEY, Receiver, ThreadedServer, free_port, wait_until

pytestmark = pytest.mark.slow


@contextmanager
def emulator_process(db: Path, port: int, time_scale: float) -> Iterator[subprocess.Popen[bytes]]:
    """``run()`` in a child process, as a user would start it; killed at the end."""
    code = (
        "from commet_webhooks.emulator import run; "
        f"run(port={port}, db_path={str(db)!r}, api_key={API_KEY!r}, time_scale={time_scale})"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode() if process.stderr else "")
            return _answers(port)

        wait_until(up, 30, "the emulator process")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=15)
        if process.stderr is not None:
            process.stderr.close()


def api(port: int, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(
        method, f"http://127.0.0.1:{port}{path}", headers={"x-api-key": API_KEY}, timeout=30,
        **kwargs,
    )  # fmt: skip
    assert response.is_success, response.text
    return response.json()["data"]


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=15)
    assert process.returncode == -signal.SIGKILL


def test_pending_retry_survives_sigkill(tmp_path: Path) -> None:
    db, port, receiver_port = tmp_path / "state.db", free_port(), free_port()
    hook = f"http://127.0.0.1:{receiver_port}/hook"
    with emulator_process(db, port, time_scale=60) as process:  # first retry after 1 s
        endpoint = api(port, "POST", "/api/webhooks", json={"url": hook})
        event_id = api(port, "POST", "/api/emulator/events", json={"event": "payment.failed"})["id"]
        wait_until(
            lambda: any(d["attempts"] for d in api(port, "GET", "/api/emulator/deliveries")),
            what="the first (failed) attempt",
        )
        kill_hard(process)

    recorder = Receiver()
    server = ThreadedServer(recorder.app(), receiver_port).start()
    try:
        with emulator_process(db, port, time_scale=60):
            (request,) = recorder.wait_for(1, timeout=30)
            assert request.headers["x-commet-event-id"] == event_id
            assert verify(request.body, request.headers["x-commet-signature"], endpoint["secret"])
            delivery = wait_until(
                lambda: next(
                    (d for d in api(port, "GET", "/api/emulator/deliveries")
                     if d["status"] == "succeeded"),
                    None,
                ),
                what="the delivery marked succeeded",
            )  # fmt: skip
            assert [a["statusCode"] for a in delivery["attempts"]] == [None, 200]
    finally:
        server.stop()


def test_attempt_cut_short_by_sigkill_is_made_again(tmp_path: Path) -> None:
    db, port = tmp_path / "state.db", free_port()
    # A receiver that accepts the connection and never answers: the attempt hangs.
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    receiver_port = silent.getsockname()[1]
    try:
        with emulator_process(db, port, time_scale=1) as process:
            api(
                port,
                "POST",
                "/api/webhooks",
                json={"url": f"http://127.0.0.1:{receiver_port}/hook"},
            )
            event_id = api(port, "POST", "/api/emulator/events", json={"event": "invoice.created"})[
                "id"
            ]
            silent.settimeout(20)
            connection, _ = silent.accept()  # the attempt is in flight now
            kill_hard(process)
            connection.close()
    finally:
        silent.close()

    recorder = Receiver()
    server = ThreadedServer(recorder.app(), receiver_port).start()
    try:
        with emulator_process(db, port, time_scale=1):
            (request,) = recorder.wait_for(1, timeout=30)
            assert request.headers["x-commet-event-id"] == event_id
    finally:
        server.stop()


def test_run_generates_and_prints_an_api_key(tmp_path: Path) -> None:
    port = free_port()
    code = (
        "from commet_webhooks.emulator import run; "
        f"run(port={port}, db_path={str(tmp_path / 'k.db')!r})"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()])
    reader.start()
    try:
        key = None
        deadline = time.monotonic() + 30
        while key is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line.startswith("API key: "):
                key = line.split(": ", 1)[1].strip()
        assert key is not None and key.startswith("ck_") and len(key) > 20
        wait_until(lambda: _answers(port), 30, "the emulator")
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/webhooks", headers={"x-api-key": key}, timeout=30
        )
        assert response.status_code == 200 and response.json() == {"success": True, "data": []}
    finally:
        process.kill()
        process.wait(timeout=15)
        reader.join(timeout=15)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/?refresh=0", timeout=2).is_success
    except httpx.TransportError:
        return False


def test_unusable_database_path_is_a_clear_error(tmp_path: Path) -> None:
    from commet_webhooks.emulator import create_app

    with pytest.raises(ValueError, match="cannot use the database"):
        create_app(db_path=str(tmp_path / "missing-dir" / "x.db"), api_key="ck_x")
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_bytes(b"this is not a database file" * 100)
    with pytest.raises(ValueError, match="cannot use the database"):
        create_app(db_path=str(not_sqlite), api_key="ck_x")
