"""The suite against the shipped examples: every example passes, each broken one fails
exactly the rule it breaks, in process and by URL, from the API and from the CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from commet_webhooks.conformance import RULES, Outcome, run_suite
from support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
# Every example handles each event exactly once, and counts its welcome emails with the
# probe count_welcome_emails: every rule, the effect rules included, is checked and passes.
EXAMPLE_OUTCOMES = {rule.id: Outcome.PASSED for rule in RULES}
IN_PROCESS = {
    "fastapi": "examples/fastapi/app.py:app",
    "starlette": "examples/starlette/app.py:app",
    "flask": "examples/flask/app.py:app",
    "wsgi": "examples/wsgi/app.py:application",
    "aiohttp": "examples/aiohttp/app.py:make_app",
}
BROKEN = {
    "reserialising_middleware": "raw-body-verified",
    "memory_store": "concurrent-duplicates-run-once",
}


def only_failing(rule: str) -> dict[str, Outcome]:
    return {r.id: Outcome.FAILED if r.id == rule else Outcome.PASSED for r in RULES}


def probe(spec: str) -> str:
    """The effect probe of the example whose app is ``spec`` (``file.py:app`` or ``file.py``)."""
    return spec.partition(":")[0] + ":count_welcome_emails"


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_imports: None) -> Path:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("EXAMPLE_DATA_DIR", str(tmp_path))  # examples/broken
    monkeypatch.setenv("COMMET_WEBHOOKS_DB", str(tmp_path / "webhooks.db"))  # the others
    return tmp_path


@pytest.mark.parametrize("name", sorted(IN_PROCESS))
def test_example_in_process_passes(
    name: str, in_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMET_WEBHOOK_SECRET", "whsec_dev")
    spec = IN_PROCESS[name]
    report = run_suite(spec, secret="whsec_dev", probe=probe(spec))
    assert report.outcomes() == EXAMPLE_OUTCOMES, report.format()


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_example_fails_exactly_its_rule(name: str, in_repo: Path) -> None:
    spec = f"examples/broken/{name}.py"
    report = run_suite(f"{spec}:app", secret="whsec_dev", probe=f"{spec}:count_welcome_emails")
    assert report.outcomes() == only_failing(BROKEN[name]), report.format()


def test_reserialising_middleware_message_points_at_the_cause(in_repo: Path) -> None:
    spec = "examples/broken/reserialising_middleware.py"
    report = run_suite(f"{spec}:app", secret="whsec_dev", rules=["raw-body-verified"])
    detail = report["raw-body-verified"].detail
    assert "answered 403" in detail
    assert "re-encoded the JSON before verification" in detail
    assert "raw request body" in detail


# ------------------------------------------------------------------ the CLI


def cli(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "COMMET_WEBHOOK_SECRET"}
    environment.update({"NO_COLOR": "1", "COLUMNS": "200", **env})
    return subprocess.run(
        [sys.executable, "-m", "commet_webhooks", "check", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_fails_on_a_broken_example_with_the_fix(tmp_path: Path) -> None:
    spec = "examples/broken/memory_store.py"
    result = cli(
        "--app", f"{spec}:app", "--probe", f"{spec}:count_welcome_emails", "-s", "whsec_dev",
        EXAMPLE_DATA_DIR=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "FAIL  concurrent-duplicates-run-once" in result.stdout
    assert "Use a store every worker shares" in result.stdout
    assert re.search(r"^PASS  duplicate-runs-once", result.stdout, re.M)
    assert "9 passed, 1 failed, 0 not checked" in result.stdout
    assert "whsec_dev" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_cli_passes_an_example_reading_its_secret_from_the_environment(tmp_path: Path) -> None:
    spec = IN_PROCESS["fastapi"]
    result = cli(
        "--app", spec, "--probe", probe(spec),
        COMMET_WEBHOOK_SECRET="whsec_dev", COMMET_WEBHOOKS_DB=str(tmp_path / "webhooks.db"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 passed, 0 failed, 0 not checked" in result.stdout
    assert re.search(r"^PASS  concurrent-duplicates-run-once", result.stdout, re.M)


def test_cli_strict_counts_unchecked_rules_as_failures(tmp_path: Path) -> None:
    spec, db = IN_PROCESS["wsgi"], str(tmp_path / "webhooks.db")
    without_probe = cli(
        "--app", spec, "--strict", COMMET_WEBHOOK_SECRET="whsec_dev", COMMET_WEBHOOKS_DB=db
    )
    assert without_probe.returncode == 1, without_probe.stdout + without_probe.stderr
    assert "6 passed, 0 failed, 4 not checked" in without_probe.stdout
    with_probe = cli(
        "--app", spec, "--probe", probe(spec), "--strict",
        COMMET_WEBHOOK_SECRET="whsec_dev", COMMET_WEBHOOKS_DB=db,
    )  # fmt: skip
    assert with_probe.returncode == 0, with_probe.stdout + with_probe.stderr


def test_cli_json_report(tmp_path: Path) -> None:
    spec = "examples/broken/reserialising_middleware.py"
    result = cli(
        "--app", f"{spec}:app", "--probe", f"{spec}:count_welcome_emails", "--json",
        "-s", "whsec_dev", EXAMPLE_DATA_DIR=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    outcomes = {r["rule"]: r["outcome"] for r in report["results"]}
    assert outcomes == {k: v.value for k, v in only_failing("raw-body-verified").items()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give your receiver"),
        (("--app", "examples/fastapi/app.py:app"), "a signing secret is required"),
        (("--app", "no_such_module:app", "-s", "whsec_x"), "cannot import 'no_such_module'"),
        (("--app", "examples/fastapi/app.py", "-s", "whsec_x"), "expected MODULE:ATTRIBUTE"),
        (("--app", "examples/fastapi/app.py:nope", "-s", "whsec_x"), "has no attribute 'nope'"),
        (("--url", "ftp://x", "-s", "whsec_x"), "http:// or https://"),
        (("--app", "a:b", "--url", "http://x", "-s", "whsec_x"), "not both"),
        (("--app", "examples/fastapi/app.py:app", "-s", "whsec_x", "--rule", "x"), "unknown rule"),
    ],
)
def test_cli_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_reports_an_app_that_exits_on_import() -> None:
    # The example exits when COMMET_WEBHOOK_SECRET is unset: check sets it from --secret,
    # so give it an empty one to see the example's own message.
    result = cli("--app", "examples/fastapi/app.py:app", "-s", "whsec_x", COMMET_WEBHOOK_SECRET="")
    assert result.returncode == 2
    assert "Set COMMET_WEBHOOK_SECRET" in result.stderr


# ------------------------------------------------------------------ by URL, as the READMEs run them


def _readme_command(name: str) -> tuple[str, str, str]:
    readme = (ROOT / "examples" / name / "README.md").read_text()
    run = next(line for line in readme.splitlines() if line.startswith("COMMET_WEBHOOK_SECRET="))
    url = re.search(r"--url (\S+)", readme)
    assert url, f"examples/{name}/README.md gives no --url"
    if not (ROOT / ".venv").exists():  # a git worktree: the tools of the venv running the tests
        run = run.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    return run, run.split()[0].split("=", 1)[1], url.group(1)


@contextmanager
def running_example(name: str, port: int, log: Path, db: Path) -> Iterator[tuple[str, str]]:
    """The example served as its README says, on ``port``, with its database at ``db``."""
    run, secret, url = _readme_command(name)
    run, url = run.replace("8000", str(port)), url.replace("8000", str(port))
    env = {k: v for k, v in os.environ.items() if k != "COMMET_WEBHOOK_SECRET"}
    env["COMMET_WEBHOOKS_DB"] = str(db)
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", f"exec env {run}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 45
        while True:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield url, secret
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fastapi", "starlette", "flask", "wsgi", "aiohttp", "django"])
def test_example_by_url_passes(name: str, tmp_path: Path) -> None:
    """Two servers on one database, as two workers, checked with the CLI as the READMEs say.

    The CLI runs in its own process: importing the probe's module (app.py) configures
    Django there, not in this one.
    """
    db = tmp_path / "webhooks.db"
    with (
        running_example(name, free_port(), tmp_path / "first.log", db) as (url, secret),
        running_example(name, free_port(), tmp_path / "second.log", db) as (second_url, _),
    ):
        result = cli(
            "--url", url, "--url", second_url, "--probe", probe(f"examples/{name}/app.py"),
            "--secret", secret, "--json", COMMET_WEBHOOKS_DB=str(db),
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    outcomes = {r["rule"]: r["outcome"] for r in json.loads(result.stdout)["results"]}
    assert outcomes == {k: v.value for k, v in EXAMPLE_OUTCOMES.items()}, result.stdout


def test_the_examples_own_tests_pass_with_the_plugin() -> None:
    """examples/*/test_app.py use only the plugin's fixtures (no conftest)."""
    env = {k: v for k, v in os.environ.items() if k != "COMMET_WEBHOOK_SECRET"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "24 passed" in result.stdout


def test_cli_says_when_nothing_answers_at_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/webhooks/commet"
    result = cli("--url", url, "-s", "whsec_x")
    assert result.returncode == 1
    assert f"cannot reach {url}" in result.stderr and "Is the receiver running?" in result.stderr
    assert "FAIL" not in result.stdout and "Traceback" not in result.stderr
