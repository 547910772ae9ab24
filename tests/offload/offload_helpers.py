"""Helpers for the task-queue tests: RabbitMQ's address, a cuttable proxy, processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.services import POSTGRES_URL, REDIS_URL

HERE = Path(__file__).parent
TESTS = HERE.parent
BIN = Path(sys.executable).parent

AMQP_ENV = "COMMET_TEST_AMQP_URL"
AMQP_URL = os.environ.get(AMQP_ENV) or "amqp://guest:guest@127.0.0.1:5672//"


def amqp_port() -> int:
    from urllib.parse import urlsplit

    return urlsplit(AMQP_URL).port or 5672


def amqp_url(port: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(AMQP_URL)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def rabbitmq_problem() -> str | None:
    """Why RabbitMQ cannot be used here, or None."""
    try:
        import kombu
    except ImportError:
        return "kombu is not installed (scripts/bootstrap installs it)"
    try:
        with kombu.Connection(AMQP_URL, connect_timeout=3) as conn:
            conn.connect()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port`` while started; stopped, the port
    refuses connections and every forwarded connection is cut (a broker outage)."""

    def __init__(self, port: int, target_port: int) -> None:
        self.port, self.target_port = port, target_port
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        assert self._server is None
        server = socket.create_server(("127.0.0.1", self.port))
        server.settimeout(0.05)
        self._server = server
        self._acceptor = threading.Thread(target=self._accept, args=(server,), daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            self._acceptor.join(5)  # it notices within its 50 ms accept timeout
            server.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, server: socket.socket) -> None:
        while self._server is server:
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process of the test's own (its own process group), its output in ``log``."""
    out = log.open("ab")
    return subprocess.Popen(
        args, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    """Stop a process this test started, and its children (its own process group)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    else:  # the group may outlive its leader (pool children)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def queue_depth(url: str, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of queue ``name``, (0, 0) when it does not exist."""
    import kombu

    with kombu.Connection(url, connect_timeout=3) as conn:
        try:
            reply = conn.default_channel.queue_declare(name, passive=True)
        except Exception:
            return (0, 0)
        return int(reply.message_count), int(reply.consumer_count)


def delete_queues(url: str, *names: str) -> None:
    import kombu

    with kombu.Connection(url, connect_timeout=3) as conn:
        for name in names:
            with contextlib.suppress(Exception):
                conn.default_channel.queue_delete(name)


class Run:
    """One test's names: queues, PostgreSQL schema, Redis prefix; and the env for its
    subprocesses."""

    def __init__(self, proxy: TcpProxy) -> None:
        run = uuid.uuid4().hex[:10]
        self.broker = amqp_url(proxy.port)
        self.queue = f"commet_offload_tests.{run}"
        self.dead_queue = f"{self.queue}.dead"
        self.schema = f"offload_{run}"
        self.prefix = f"commet_offload_tests:{run}:"

    def env(self, **extra: Any) -> dict[str, str]:
        paths = [str(Path(__file__).parent), str(TESTS), os.environ.get("PYTHONPATH", "")]
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "OFFLOAD_BROKER": self.broker,
            "OFFLOAD_QUEUE": self.queue,
            "OFFLOAD_DEAD_QUEUE": self.dead_queue,
            "OFFLOAD_SCHEMA": self.schema,
            "OFFLOAD_POSTGRES_URL": POSTGRES_URL,
            "OFFLOAD_REDIS_URL": REDIS_URL,
            "OFFLOAD_REDIS_PREFIX": self.prefix,
            **{k: str(v) for k, v in extra.items()},
        }

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            cursor = conn.execute(query.replace("{schema}", self.schema), params or None)
            return cursor.fetchall() if cursor.description else []
