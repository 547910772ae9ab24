"""Helpers shared by the store tests and the worker processes they spawn.

Spawned workers import this module by name (its folder is put on ``sys.path`` by the
conftest), so everything a worker needs lives here and is picklable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commet_webhooks import Webhooks
from commet_webhooks.stores import IdempotencyStore, MemoryStore
from support import services

# COMMET_TEST_REDIS_URL / COMMET_TEST_POSTGRES_URL, else the CI machine's defaults.
REDIS_URL = services.REDIS_URL
POSTGRES_DSN = services.POSTGRES_URL


@dataclass(frozen=True)
class StoreSpec:
    """How to build one store: picklable, so a worker process can build its own."""

    kind: str  # memory | sqlite | redis | postgres
    target: str = ""  # file path, URL or DSN
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, **overrides: Any) -> IdempotencyStore:
        options = {**self.options, **overrides}
        if self.kind == "memory":
            return MemoryStore(**options)
        if self.kind == "sqlite":
            from commet_webhooks.stores.sqlite import SQLiteStore

            return SQLiteStore(self.target, **options)
        if self.kind == "redis":
            from commet_webhooks.stores.redis import RedisStore

            return RedisStore(self.target, **options)
        if self.kind == "postgres":
            from commet_webhooks.stores.postgres import PostgresStore

            return PostgresStore(self.target, **options)
        raise ValueError(f"unknown store kind {self.kind!r}")

    def at(self, target: str) -> StoreSpec:
        """The same store reached through another address (a proxy port)."""
        return StoreSpec(self.kind, target, self.options)


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def record_run(path: str, event_id: str) -> None:
    """Append one line per handler run; O_APPEND keeps lines whole across processes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{event_id}\n".encode())
    finally:
        os.close(fd)


def read_runs(folder: Path) -> list[str]:
    return [line for p in sorted(folder.glob("runs-*.txt")) for line in p.read_text().split()]


def outcome(status: int, body: bytes) -> str:
    if status == 200:
        return "duplicate" if json.loads(body).get("duplicate") else "ok"
    return {409: "busy", 503: "unavailable"}.get(status, f"status {status}")


# ---------------------------------------------------------------- worker processes


def dedupe_worker(
    spec: StoreSpec,
    secret: str,
    deliveries: list[tuple[bytes, dict[str, str]]],
    mode: str,
    folder: str,
    index: int,
) -> None:
    """Deliver every request (shuffled) through one ``Webhooks``; write the outcomes.

    Waits for ``go`` in ``folder`` after reporting ready, so all workers start together.
    """
    rng = random.Random(index)
    deliveries = list(deliveries)
    rng.shuffle(deliveries)
    runs = os.path.join(folder, f"runs-{index}.txt")
    store = spec.build()
    try:

        async def on_async(event: Any) -> None:
            await asyncio.sleep(0.005)
            record_run(runs, event.id)

        def on_sync(event: Any) -> None:
            time.sleep(0.005)
            record_run(runs, event.id)

        webhooks = Webhooks(
            secret,
            on_payload=on_async if mode == "async" else on_sync,
            idempotency_store=store,
        )
        Path(folder, f"ready-{index}").touch()
        wait_for(lambda: Path(folder, "go").exists(), 60, "the go signal")
        if mode == "async":

            async def deliver_all() -> list[str]:
                limit = asyncio.Semaphore(4)

                async def one(body: bytes, headers: dict[str, str]) -> str:
                    async with limit:
                        response = await webhooks.handle(body, headers)
                        return outcome(response.status, response.body)

                try:
                    return list(await asyncio.gather(*(one(b, h) for b, h in deliveries)))
                finally:
                    await store.aclose()

            outcomes = asyncio.run(deliver_all())
        else:
            outcomes = []
            for body, headers in deliveries:
                response = webhooks.handle_sync(body, headers)
                outcomes.append(outcome(response.status, response.body))
        Path(folder, f"result-{index}.json").write_text(json.dumps(outcomes))
    finally:
        store.close()


def sleeping_worker(
    spec: StoreSpec, secret: str, body: bytes, headers: dict[str, str], started: str
) -> None:
    """Handle one delivery whose handler announces itself and then sleeps (to be killed)."""
    store = spec.build()

    def on_payload(event: Any) -> None:
        Path(started + ".tmp").write_text(str(time.monotonic()))
        os.replace(started + ".tmp", started)  # appears whole, never half-written
        time.sleep(60)

    Webhooks(secret, on_payload=on_payload, idempotency_store=store).handle_sync(body, headers)


# ---------------------------------------------------------------- a switchable TCP proxy


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` while started.

    Stopped, the port refuses connections and every forwarded connection is cut:
    an outage of the server behind it, as the client sees it. Black-holed, it keeps
    every connection open and accepts new ones but forwards nothing, either way: a
    dead network (a pulled cable, a dropped route) as the client sees it.
    """

    def __init__(self, port: int, target_port: int) -> None:
        self.port = port
        self.target_port = target_port
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.black_holed = False

    def black_hole(self, on: bool = True) -> None:
        """Stop (or resume) forwarding, without closing anything."""
        self.black_holed = on

    def start(self) -> None:
        assert self._server is None
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._spawn(self._accept, self._server)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self, server: socket.socket) -> None:
        server.settimeout(0.05)
        while self._server is server:
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.black_holed:  # accepted, then silence
                with self._lock:
                    self._sockets.append(client)
                self._spawn(self._swallow, client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    @staticmethod
    def _swallow(source: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while source.recv(65536):
                pass

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.black_holed:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def forked_child(store: IdempotencyStore, result: str) -> None:
    """Use a store inherited through fork(): claim and complete one key, report the claim."""
    outcome = store.claim("from-child", "child")
    store.complete("from-child", "child")
    Path(result).write_text(outcome.value)


def fresh_file_worker(path: str, go: str, result: str) -> None:
    """Open an SQLite store on ``path`` and claim keys at once when ``go`` appears:
    writes ``ok`` or the error to ``result``."""
    from commet_webhooks.stores.sqlite import SQLiteStore

    store = SQLiteStore(path)
    wait_for(lambda: os.path.exists(go), 60, "the go signal")
    try:
        for i in range(5):
            store.claim(f"key-{i}", f"owner-{os.getpid()}")
        Path(result).write_text("ok")
    except Exception as exc:
        Path(result).write_text(f"{type(exc).__name__}: {exc}")
    finally:
        store.close()
