"""The WSGI adapters under gunicorn (the server the examples recommend), as a subprocess.

gunicorn reports a malformed chunked body by raising its own parse errors from
``wsgi.input.read`` (``InvalidChunkSize`` and friends are not ``OSError``s): each
adapter must answer 400, log no traceback and keep serving. The other checks here
(repeated signature headers, declared sizes over the limit) hold under gunicorn too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from commet_webhooks import sign
from commet_webhooks.testing import sample_event

SECRET = "whsec_gunicorn_tests_7c21"
LIMIT = 16_384

APP_MODULE = f'''
import os
import django
from django.conf import settings

from commet_webhooks import Webhooks
from commet_webhooks.flask import webhook_blueprint
from commet_webhooks.wsgi import WebhookApp

SECRET = {SECRET!r}
LIMIT = {LIMIT}
RAN = os.environ["RAN_FILE"]


def record(event):
    with open(RAN, "a") as out:
        out.write(str(event.id) + "\\n")


def webhooks():
    return Webhooks(SECRET, max_body_bytes=LIMIT, on_payload=record)


def flask_app(flask_hooks):
    from flask import Flask

    app = Flask(__name__)
    app.register_blueprint(webhook_blueprint(webhooks(), flask_hooks=flask_hooks))
    return app


flask = flask_app(False)
flask_hooks = flask_app(True)
wsgi = WebhookApp(webhooks())

settings.configure(
    DEBUG=False,
    SECRET_KEY="gunicorn-tests-not-secret",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
    DATABASES={{}},
)
django.setup()
from django.core.wsgi import get_wsgi_application
from django.urls import path
from commet_webhooks.django import webhook_view

urlpatterns = [path("webhooks/commet", webhook_view(webhooks()))]
django_wsgi = get_wsgi_application()
'''

APPS = ["flask", "flask_hooks", "wsgi", "django_wsgi"]
PATH = "/webhooks/commet"


class Gunicorn:
    def __init__(self, port: int, ran: Path, log: Path) -> None:
        self.port, self.ran, self.log = port, ran, log

    def handled(self) -> set[str]:
        return set(self.ran.read_text().split()) if self.ran.exists() else set()

    def exchange(self, head_lines: list[str], body: bytes) -> tuple[int, bytes]:
        """Send the request as written; (status, answer body). The server closes."""
        head = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nConnection: close\r\n"
        head += "".join(f"{line}\r\n" for line in head_lines) + "\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(head.encode("latin-1") + body)
            received = b""
            while data := sock.recv(65536):
                received += data
        head_part, _, answer = received.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in head_part.lower():  # Django sets no length
            answer = _dechunk(answer)
        return int(head_part.split()[1]), answer


def _dechunk(framed: bytes) -> bytes:
    decoded = b""
    while framed:
        size, _, rest = framed.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        decoded, framed = decoded + rest[:n], rest[n + 2 :]
    return decoded


@pytest.fixture(scope="module", params=APPS)
def gunicorn(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    work = tmp_path_factory.mktemp(f"gunicorn-{request.param}")
    (work / "hooks_app.py").write_text(APP_MODULE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = work / "gunicorn.log"
    server = Gunicorn(port, work / "ran.txt", log)
    env = {**os.environ, "RAN_FILE": str(server.ran)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn",
                "--bind", f"127.0.0.1:{port}",
                "--worker-class", "gthread", "--threads", "2", "--workers", "1",
                "--chdir", str(work),
                f"hooks_app:{request.param}",
            ],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 45
        while True:
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"gunicorn did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _signed() -> tuple[str, bytes, str]:
    envelope = sample_event("subscription.activated")
    body = json.dumps(envelope).encode()
    return envelope["id"], body, sign(body, SECRET)


def _still_serving(server: Gunicorn) -> None:
    event_id, body, signature = _signed()
    status, answer = server.exchange(
        [f"X-Commet-Signature: {signature}", f"Content-Length: {len(body)}"], body
    )
    assert status == 200, answer
    assert event_id in server.handled()


@pytest.mark.parametrize(
    "size_line", [b"zz", b"-5", b"1g"], ids=["not-hex", "negative", "trailing-junk"]
)
def test_malformed_chunked_body_is_a_400_without_a_traceback(gunicorn: Gunicorn, size_line):
    event_id, body, signature = _signed()
    framed = size_line + b"\r\n" + body + b"\r\n0\r\n\r\n"

    status, answer = gunicorn.exchange(
        [f"X-Commet-Signature: {signature}", "Transfer-Encoding: chunked"], framed
    )

    assert status == 400, answer
    assert json.loads(answer)["received"] is False
    assert event_id not in gunicorn.handled()
    log = gunicorn.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log
    _still_serving(gunicorn)


def test_repeated_signature_headers_are_403(gunicorn: Gunicorn):
    event_id, body, signature = _signed()
    lines = [f"X-Commet-Signature: {signature}", f"X-Commet-Signature: {'0' * 64}"]

    status, answer = gunicorn.exchange([*lines, f"Content-Length: {len(body)}"], body)

    assert status == 403, answer
    assert json.loads(answer) == {"received": False, "error": "Invalid signature"}
    assert event_id not in gunicorn.handled()


def test_declared_length_over_the_limit_is_413_before_the_body(gunicorn: Gunicorn):
    status, answer = gunicorn.exchange(
        [f"X-Commet-Signature: {'0' * 64}", "Content-Length: 10000000000"], b""
    )

    assert status == 413, answer
