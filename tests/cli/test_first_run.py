"""What a new user meets first: whole help lines, flags that read as flags, and the
``trigger`` command ``listen`` suggests, which works when pasted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cli import SECRET_ENV, cli_env, run_cli, running_listener

COMMANDS = ["", "sign", "verify", "events", "trigger", "listen", "emulator"]


def help_of(command: str, **env: str) -> str:
    base = {k: v for k, v in cli_env().items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    result = run_cli(*[a for a in (command, "--help") if a], env={**base, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def flat(text: str) -> str:
    """Help text with the panel borders removed and every run of whitespace made one space."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c or "root")
@pytest.mark.parametrize("columns", ["80", None], ids=["80-columns", "piped"])
def test_help_renders_whole_lines_and_natural_flags(command: str, columns: str | None) -> None:
    text = help_of(command, **({"COLUMNS": columns} if columns else {}))
    assert "…" not in text, text  # nothing cut off
    assert "<bool>" not in text, text  # a flag takes no value
    assert "--help" in text
    width = max(len(line) for line in text.splitlines())
    assert width <= (int(columns) if columns else 120)


def test_piped_help_is_wider_than_a_default_terminal() -> None:
    text = help_of("emulator")
    assert max(len(line) for line in text.splitlines()) > 80
    assert "60, 300, 900, 1800, 3600, 7200, 14400 and 21600 s" in flat(text)
    assert re.search(r"--allow-http\s+Accept plain", text)  # no metavar between flag and help


def test_listen_suggests_a_trigger_command_that_works_when_pasted(
    secret: str, tmp_path: Path
) -> None:
    with running_listener(secret, "--json") as listener:
        deadline = time.monotonic() + 20
        while not any("commet-webhooks trigger" in line for line in listener.stderr):
            assert time.monotonic() < deadline, listener.stderr
            time.sleep(0.05)
        printed = "\n".join(listener.stderr)
        assert secret not in printed  # the secret the user typed is never echoed
        assert f"export {SECRET_ENV}=" in printed
        [command] = [ln.strip() for ln in listener.stderr if "commet-webhooks trigger" in ln]
        assert f'--secret "${SECRET_ENV}"' in command
        # Pasted into a shell where the variable holds the secret, as the hint says.
        bin_dir = str(Path(sys.executable).parent)
        env = {**cli_env(), SECRET_ENV: secret, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
        pasted = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60
        )
        assert pasted.returncode == 0, pasted.stdout + pasted.stderr
        assert "200" in pasted.stdout
        delivery = listener.next_delivery()
        assert delivery["verified"] is True and delivery["event"] == "payment.failed"
