"""pytest fixtures for testing a Commet webhook receiver (``pip install commet-webhooks[testing]``).

Installed with the ``testing`` extra, pytest loads this plugin by itself (entry point
``pytest11``). Fixtures:

``commet_webhook_secret``
    The signing secret deliveries are signed with: ``$COMMET_WEBHOOK_SECRET`` when set,
    else a fresh ``whsec_test_...``. Override it to return your app's test secret.
``commet_signed_request``
    Builds signed deliveries: ``body, headers = commet_signed_request("payment.failed")``;
    ``.forged(...)`` signs with another secret, ``.unsigned(...)`` leaves the signature out.
``commet_receiver``
    ``commet_receiver(app_or_url)``: a client for your receiver: an ASGI or WSGI app or an
    aiohttp Application (in process), an import string, or a URL. ``.deliver("payment.failed")``
    signs and posts; ``.post(body, headers)`` posts bytes as they are.
``commet_conformance``
    ``commet_conformance(app_or_url, probe=...)`` runs the receiver conformance suite and
    returns its report; ``report.assert_ok()`` fails the test with every finding.
``commet_emulator``
    A local Commet emulator (``python -m commet_webhooks emulator``) on a free loopback
    port with its own database; retry delays are divided by 600.
``commet_live_server``
    ``commet_live_server(app)`` serves an in-process app on a free loopback port and
    returns its base URL, so the emulator can deliver to it.

Nothing heavy is imported until a fixture is used, so the plugin costs nothing to
projects that never ask for it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .testing import sample_event, signed_request

if TYPE_CHECKING:
    import httpx

    from .conformance import Receiver, Report

__all__ = [
    "Emulator",
    "SignedRequests",
    "serve",
    "start_emulator",
]

SECRET_ENV = "COMMET_WEBHOOK_SECRET"  # noqa: S105 - the name of a variable, not a secret
EMULATOR_TIME_SCALE = 600.0  # the one-minute first retry comes after 0.1 s


# ------------------------------------------------------------------ signed requests


class SignedRequests:
    """Signed deliveries built from samples or whole envelopes, with one secret."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __repr__(self) -> str:
        return "SignedRequests(secret=whsec_********)"

    def __call__(
        self,
        event: str | Mapping[str, Any] | bytes,
        *,
        headers: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> tuple[bytes, dict[str, str]]:
        """``(body, headers)`` for ``event``: a type name, an envelope, or raw bytes."""
        return signed_request(self._payload(event, overrides), self.secret, headers=headers)

    def forged(
        self, event: str | Mapping[str, Any] | bytes, **overrides: Any
    ) -> tuple[bytes, dict[str, str]]:
        """The same, signed with a secret the receiver does not know."""
        wrong = "whsec_forged_" + secrets.token_hex(8)
        return signed_request(self._payload(event, overrides), wrong)

    def unsigned(
        self, event: str | Mapping[str, Any] | bytes, **overrides: Any
    ) -> tuple[bytes, dict[str, str]]:
        """The same, without the signature header."""
        body, headers = self(event, **overrides)
        headers.pop("X-Commet-Signature")
        return body, headers

    @staticmethod
    def _payload(
        event: str | Mapping[str, Any] | bytes, overrides: dict[str, Any]
    ) -> Mapping[str, Any] | bytes:
        if isinstance(event, str):
            return sample_event(event, **overrides)
        if overrides:
            raise TypeError("overrides only apply to a sample (an event type name)")
        return event


# ------------------------------------------------------------------ the emulator


@dataclass
class Emulator:
    """A running local Commet emulator."""

    url: str
    api_key: str
    db_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    _http: httpx.Client | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Emulator(url={self.url!r}, api_key=ck_********)"

    @property
    def http(self) -> httpx.Client:
        """An ``httpx.Client`` for the emulator's API (base URL and API key set)."""
        if self._http is None:
            from .conformance._deps import httpx

            self._http = httpx.Client(
                base_url=self.url, headers={"x-api-key": self.api_key}, timeout=30
            )
        return self._http

    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call the API and return ``data`` of its ``{"success", "data"}`` answer."""
        answer = self.http.request(method, path, json=body)
        payload = answer.json()
        if not answer.is_success or not payload.get("success", True):
            raise AssertionError(f"{method} {path} -> {answer.status_code} {payload}")
        return payload.get("data")

    def create_endpoint(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        """Register ``url`` for ``events`` (default: every type); the answer has ``secret``."""
        from .events import EVENT_TYPES

        data: dict[str, Any] = self.api(
            "POST", "/api/webhooks", {"url": url, "events": events or list(EVENT_TYPES)}
        )
        return data

    def send_event(self, event: str, data: Mapping[str, Any] | None = None) -> str:
        """Emit ``event`` (a realistic sample unless ``data`` is given); return its id."""
        body: dict[str, Any] = {"event": event}
        if data is not None:
            body["data"] = dict(data)
        result: dict[str, Any] = self.api("POST", "/api/emulator/events", body)
        return str(result["id"])

    def log(self) -> str:
        """What the emulator printed so far."""
        return self.log_path.read_text("utf-8", "replace")

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def start_emulator(
    directory: Path,
    *,
    time_scale: float = EMULATOR_TIME_SCALE,
    api_key: str | None = None,
    extra_args: tuple[str, ...] = (),
    startup_timeout: float = 30.0,
) -> Iterator[Emulator]:
    """Run ``python -m commet_webhooks emulator`` on a free loopback port until the block ends.

    For a fixture of another scope: ``with start_emulator(tmp_path_factory.mktemp("c")) as e``.
    """
    from .conformance._deps import httpx  # with a hint when the extra is missing

    key = api_key or "ck_test_" + secrets.token_hex(12)
    directory.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(3):  # the free port may be taken between probing and binding
        port = _free_port()
        db_path = directory / f"emulator-{port}.db"
        log_path = directory / f"emulator-{port}.log"
        command = [
            sys.executable, "-m", "commet_webhooks", "emulator",
            "--host", "127.0.0.1", "--port", str(port), "--db", str(db_path),
            "--api-key", key, "--time-scale", f"{time_scale:g}", *extra_args,
        ]  # fmt: skip
        env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        emulator = Emulator(f"http://127.0.0.1:{port}", key, db_path, log_path, process)
        try:
            deadline = time.monotonic() + startup_timeout
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    ready = httpx.get(emulator.url + "/api/webhooks", headers={"x-api-key": key})
                    if ready.is_success:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                last_error = emulator.log()[-2000:].replace(key, "ck_********")
                if process.poll() is None:
                    raise RuntimeError(f"the emulator did not start in {startup_timeout:g} s")
                continue  # it exited: most likely the port was taken, try another
            yield emulator
            return
        finally:
            emulator.stop()
    raise RuntimeError(f"the emulator did not start after 3 tries:\n{last_error}")


# ------------------------------------------------------------------ serving an app


@contextlib.contextmanager
def serve(app: Any, *, startup_timeout: float = 20.0) -> Iterator[str]:
    """Serve an ASGI or WSGI app with uvicorn on a free loopback port; yield its base URL."""
    import uvicorn

    from .conformance._target import _is_async_callable

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        interface="asgi3" if _is_async_callable(app) else "wsgi",
        log_level="warning",
        access_log=False,
        lifespan="auto",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="commet-live-server", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start serving")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(startup_timeout)
        sock.close()


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def commet_webhook_secret() -> str:
    """The secret deliveries are signed with; override it to return your app's test secret."""
    return os.environ.get(SECRET_ENV) or "whsec_test_" + secrets.token_hex(12)


@pytest.fixture
def commet_signed_request(commet_webhook_secret: str) -> SignedRequests:
    """Build signed deliveries: ``body, headers = commet_signed_request("payment.failed")``."""
    return SignedRequests(commet_webhook_secret)


@pytest.fixture
def commet_receiver(commet_webhook_secret: str) -> Iterator[Callable[..., Receiver]]:
    """``commet_receiver(app_or_url, path="/webhooks/commet")``: a client for your receiver."""
    from .conformance import open_receiver

    opened: list[Receiver] = []

    def open_(target: Any, *, secret: str | None = None, **options: Any) -> Receiver:
        receiver = open_receiver(target, secret=secret or commet_webhook_secret, **options)
        opened.append(receiver)
        return receiver

    yield open_
    for receiver in reversed(opened):
        receiver.close()


@pytest.fixture
def commet_conformance(commet_webhook_secret: str) -> Callable[..., Report]:
    """``commet_conformance(app_or_url, probe=...)``: run the conformance suite, get the report."""
    from .conformance import run_suite

    def run(*targets: Any, **options: Any) -> Report:
        options.setdefault("secret", commet_webhook_secret)
        return run_suite(*targets, **options)

    return run


@pytest.fixture
def commet_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """A running local Commet emulator with its own database."""
    with start_emulator(tmp_path_factory.mktemp("commet-emulator")) as emulator:
        yield emulator


@pytest.fixture
def commet_live_server() -> Iterator[Callable[[Any], str]]:
    """``commet_live_server(app)``: serve an ASGI/WSGI app on loopback; returns its base URL."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(serve(app))
