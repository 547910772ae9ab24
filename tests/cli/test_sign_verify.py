"""``sign``, ``verify``, ``events`` and the entry points, run as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import commet_webhooks
from commet_webhooks.events import EVENT_TYPES

BODY = b'{"event":"payment.failed","timestamp":"2026-01-01T00:00:00Z","data":{"x":"\xc3\xa9"}}'


def _no_leak(result: subprocess.CompletedProcess[str], secret: str) -> None:
    assert secret not in result.stdout
    assert secret not in result.stderr
    assert "Traceback" not in result.stderr


def test_sign_file_matches_library(cli: Any, secret: str, tmp_path: Path) -> None:
    body_file = tmp_path / "body.json"
    body_file.write_bytes(BODY)
    result = cli("sign", "--secret", secret, str(body_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == commet_webhooks.sign(BODY, secret)
    _no_leak(result, secret)


def test_sign_reads_stdin_and_secret_from_env(cli: Any, secret: str) -> None:
    from_flag = cli("sign", "-s", secret, "-", input=BODY)
    env = dict(os.environ, COMMET_WEBHOOK_SECRET=secret, NO_COLOR="1")
    from_env = cli("sign", "-", input=BODY, env=env)
    assert from_flag.returncode == from_env.returncode == 0
    assert from_flag.stdout.strip() == from_env.stdout.strip() == commet_webhooks.sign(BODY, secret)


def test_sign_verify_round_trip(cli: Any, secret: str, tmp_path: Path) -> None:
    body_file = tmp_path / "body.json"
    body_file.write_bytes(BODY)
    signature = cli("sign", "--secret", secret, str(body_file)).stdout.strip()

    valid = cli("verify", "--secret", secret, "--signature", signature, str(body_file))
    assert valid.returncode == 0
    assert "valid" in valid.stdout
    _no_leak(valid, secret)

    from_stdin = cli("verify", "--secret", secret, "--signature", signature, "-", input=BODY)
    assert from_stdin.returncode == 0

    tampered = cli("verify", "--secret", secret, "--signature", signature, "-", input=BODY + b" ")
    assert tampered.returncode == 1
    assert "invalid" in tampered.stderr
    _no_leak(tampered, secret)

    wrong_secret = cli("verify", "-s", "whsec_other", "--signature", signature, str(body_file))
    assert wrong_secret.returncode == 1


def test_verify_accepts_any_of_several_secrets(cli: Any, secret: str) -> None:
    signature = commet_webhooks.sign(BODY, secret)
    result = cli(
        "verify", "-s", "whsec_new", "-s", secret, "--signature", signature, "-", input=BODY
    )
    assert result.returncode == 0


def test_verify_garbage_signature_is_invalid_not_a_crash(cli: Any, secret: str) -> None:
    result = cli("verify", "-s", secret, "--signature", "not-hex-at-all", "-", input=BODY)
    assert result.returncode == 1
    _no_leak(result, secret)


def test_user_errors_are_one_clear_line(cli: Any, secret: str, tmp_path: Path) -> None:
    missing = cli("sign", "--secret", secret, str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert "file not found" in missing.stderr
    _no_leak(missing, secret)

    directory = cli("sign", "--secret", secret, str(tmp_path))
    assert directory.returncode == 2
    assert "directory" in directory.stderr

    empty = cli("sign", "--secret", "", "-", input=BODY)
    assert empty.returncode == 2
    assert "must not be empty" in empty.stderr

    no_secret = cli("verify", "--signature", "ab", "-", input=BODY)
    assert no_secret.returncode == 2
    assert "COMMET_WEBHOOK_SECRET" in no_secret.stderr

    no_signature = cli("verify", "--secret", secret, "-", input=BODY)
    assert no_signature.returncode == 2
    assert "--signature" in no_signature.stderr

    for result in (missing, directory, empty, no_secret, no_signature):
        assert "Traceback" not in result.stderr


def test_module_help_lists_every_command(cli: Any) -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("sign", "verify", "trigger", "listen", "emulator", "events"):
        assert command in result.stdout


def test_console_script_and_version() -> None:
    script = Path(sys.executable).with_name("commet-webhooks")
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert commet_webhooks.__version__ in result.stdout


def test_no_command_shows_help_and_unknown_command_is_usage_error(cli: Any) -> None:
    bare = cli()
    assert "Usage" in bare.stdout + bare.stderr
    unknown = cli("frobnicate")
    assert unknown.returncode == 2
    assert "Traceback" not in unknown.stderr


def test_events_lists_the_registry(cli: Any) -> None:
    result = cli("events")
    assert result.returncode == 0
    for name, spec in EVENT_TYPES.items():
        assert name in result.stdout
        assert spec.handler_keyword in result.stdout


def test_help_never_shows_the_secret_from_the_environment(cli: Any, secret: str) -> None:
    env = dict(os.environ, COMMET_WEBHOOK_SECRET=secret, NO_COLOR="1")
    for command in ("sign", "verify", "trigger", "listen"):
        result = cli(command, "--help", env=env)
        assert result.returncode == 0
        assert "COMMET_WEBHOOK_SECRET" in result.stdout
        _no_leak(result, secret)


def test_shell_completion_offers_the_registry_event_types(cli: Any) -> None:
    env = dict(
        os.environ,
        _COMMET_WEBHOOKS_COMPLETE="complete_bash",
        COMP_WORDS="commet-webhooks trigger payment.",
        COMP_CWORD="2",
    )
    result = subprocess.run(
        [str(Path(sys.executable).with_name("commet-webhooks"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    offered = set(result.stdout.split())
    assert offered == {name for name in EVENT_TYPES if name.startswith("payment.")}


def test_secret_typed_in_place_of_the_file_is_not_echoed(cli: Any, secret: str) -> None:
    env = dict(os.environ, COMMET_WEBHOOK_SECRET=secret, NO_COLOR="1")
    result = cli("sign", secret, env=env)
    assert result.returncode == 2
    assert "looks like a secret" in result.stderr
    _no_leak(result, secret)
