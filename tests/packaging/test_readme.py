"""The README cannot rot: every Python snippet runs, and the Quick start runs end to end.

Snippets run as pasted, each in a fresh namespace, in a folder that holds the Quick
start's ``app.py`` (so ``from app import webhooks`` works), with ``COMMET_WEBHOOK_SECRET``
set to the README's own value and a local Commet emulator standing in for Commet's
production and sandbox (``COMMET_API_KEY`` is its key); the ``test_*`` functions a
snippet defines are called too. The
Quick start itself runs for real: its ``uvicorn`` command serves its ``app.py``, its
``trigger`` command sends an event, and the output is what the README says.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from commet_webhooks import Webhooks
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.testing import sample_event, signed_request
from support.cli import cli_env
from support.net import free_port, wait_for_port
from support.servers import serve_asgi

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.M | re.S)
APP_HEADING = "### 2. Write a receiver: `app.py`"


@dataclass(frozen=True)
class Snippet:
    lang: str
    code: str
    line: int  # where the code starts in README.md
    heading: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"line{self.line}-{slug}"


def snippets(lang: str) -> list[Snippet]:
    found = []
    for match in FENCE.finditer(TEXT):
        if match["lang"] != lang:
            continue
        before = TEXT[: match.start()]
        headings = re.findall(r"^#{2,4} .*$", before, re.M)
        found.append(
            Snippet(lang, match["code"], before.count("\n") + 2, headings[-1] if headings else "")
        )
    return found


def section(heading: str) -> str:
    start = TEXT.index(heading)
    level = heading.split(" ")[0]
    rest = TEXT[start + len(heading) :]
    end = re.search(rf"^#{{2,{len(level)}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def quick_start_secret() -> str:
    match = re.search(r"^export COMMET_WEBHOOK_SECRET=(\S+)", TEXT, re.M)
    assert match, "the Quick start sets COMMET_WEBHOOK_SECRET"
    return match[1]


def app_code() -> str:
    [app] = [s for s in snippets("python") if s.heading == APP_HEADING]
    return app.code


PYTHON = snippets("python")
API_KEY = "ck_readme_snippets"

#: Snippets known not to run as pasted, by heading: each is a bug in the README. The
#: xfail is strict, so the test fails as soon as the snippet runs: then drop its entry.
KNOWN_BROKEN: dict[str, str] = {}


def _cases() -> list[object]:
    cases: list[object] = []
    for snippet in PYTHON:
        reason = KNOWN_BROKEN.get(snippet.heading)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        cases.append(pytest.param(snippet, id=snippet.id, marks=marks))
    return cases


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Commet emulator (its state API answers the client snippets)."""
    from commet_webhooks.emulator import create_app

    db = tmp_path_factory.mktemp("emulator") / "state.db"
    with serve_asgi(create_app(db_path=str(db), api_key=API_KEY), lifespan="on") as url:
        # The snippets ask about user_123: a customer with a paid Pro subscription.
        with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=30) as http:
            http.post(
                "/api/v1/customers", json={"externalId": "user_123", "email": "u@example.com"}
            ).raise_for_status()
            sub = http.post(
                "/api/v1/subscriptions", json={"customerId": "user_123", "planId": "plan_pro"}
            ).json()["data"]
            http.post(f"/api/emulator/subscriptions/{sub['id']}/pay").raise_for_status()
        yield url


@pytest.fixture
def readme_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator_url: str
) -> Iterator[Path]:
    """A folder with the Quick start's ``app.py``, importable; the secret and key set."""
    from commet_webhooks.client import _core

    monkeypatch.setattr(_core, "DEFAULT_BASE_URL", emulator_url)  # Commet's host -> emulator
    monkeypatch.setenv("COMMET_API_KEY", API_KEY)
    (tmp_path / "app.py").write_text(app_code(), encoding="utf-8")
    monkeypatch.setenv("COMMET_WEBHOOK_SECRET", quick_start_secret())
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "app", raising=False)
    yield tmp_path
    sys.modules.pop("app", None)


def test_the_readme_has_its_snippets() -> None:
    assert len(PYTHON) >= 4
    assert app_code().count("import") >= 3


@pytest.mark.parametrize("snippet", _cases())
def test_python_snippet_runs(snippet: Snippet, readme_folder: Path) -> None:
    code = compile(snippet.code, f"README.md:{snippet.line}", "exec")
    namespace: dict[str, object] = {"__name__": "readme_snippet"}
    exec(code, namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            result = value()
            if asyncio.iscoroutine(result):
                asyncio.run(result)
    # A receiver a snippet builds runs every handler it registered without an error
    # (a handler that calls something undefined would answer 200 with a warning).
    receiver = namespace.get("webhooks")
    if isinstance(receiver, Webhooks):
        secret = os.environ["COMMET_WEBHOOK_SECRET"]
        for event_type in EVENT_TYPES:
            answer = receiver.handle_sync(*signed_request(sample_event(event_type), secret))
            assert (answer.status, answer.body) == (200, b'{"received":true}'), (
                event_type,
                answer.body,
            )


def test_install_lines_name_real_extras() -> None:
    extras = set(importlib.metadata.metadata("commet-webhooks").get_all("Provides-Extra") or [])
    requires = importlib.metadata.requires("commet-webhooks") or []
    named = set()
    for snippet in snippets("bash"):
        for found in re.findall(r"""pip install (?:-e )?["']?[\w.-]*\[([\w,]+)\]""", snippet.code):
            named |= set(found.split(","))
    assert named and named <= extras, named - extras
    # "the CLI and uvicorn": the cli extra brings the server the Quick start runs.
    assert any(r.startswith("uvicorn") and 'extra == "cli"' in r for r in requires), requires
    install = section("### 1. Install")
    listed = set(re.findall(r"`(\w+)`", install.split("the extras are", 1)[1]))
    assert listed == extras - {"all", "dev", "bench"}


def _commands(heading: str) -> list[str]:
    """The shell commands of a section's bash block, continuation lines joined."""
    block = FENCE.search(section(heading))
    assert block, f"no code block under {heading}"
    joined = block["code"].replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def test_quick_start_runs_end_to_end(tmp_path: Path) -> None:
    """Steps 2 to 4 as written: app.py, the uvicorn command, the trigger command."""
    (tmp_path / "app.py").write_text(app_code(), encoding="utf-8")
    run = _commands("### 3. Run it")
    send = _commands("### 4. Send it a signed test event")
    assert run[0] == send[0] == f"export COMMET_WEBHOOK_SECRET={quick_start_secret()}"
    [serve] = [c for c in run if c.startswith("uvicorn ")]
    [trigger] = [c for c in send if c.startswith("commet-webhooks trigger ")]
    port = str(free_port())
    bin_dir = str(Path(sys.executable).parent)  # where pip put uvicorn and commet-webhooks
    env = {**cli_env(), "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    server = subprocess.Popen(
        ["bash", "-c", f"{run[0]} && exec {serve.replace('8000', port)}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(int(port), server)
        sent = subprocess.run(
            ["bash", "-c", f"{send[0]} && {trigger.replace('8000', port)}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        # What you should see: the README's text block, with "..." for what varies.
        [shown] = [
            m for m in FENCE.finditer(section("### 4. Send it a signed test event"))
            if m["lang"] == "text"
        ]  # fmt: skip
        for expected in shown["code"].splitlines():
            expected = expected.replace(":8000/", f":{port}/")
            pattern = ".*".join(re.escape(part) for part in expected.split("..."))
            assert re.search(pattern.replace(r"\ ", r"\s+"), sent.stdout), (expected, sent.stdout)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    printed = re.search(
        r"the server prints `([^`]+)`", section("### 4. Send it a signed test event")
    )
    assert printed
    assert printed[1] in output.decode(), output.decode()[-2000:]


def test_quick_start_trigger_is_a_real_cli_command() -> None:
    [trigger] = [c for c in _commands("### 4. Send it a signed test event") if "trigger" in c]
    argv = shlex.split(trigger)
    assert argv[:2] == ["commet-webhooks", "trigger"]
    assert "--url" in argv
