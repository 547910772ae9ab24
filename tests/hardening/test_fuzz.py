"""Run the coverage-guided fuzz target (atheris): a short pass always, a long one as ``slow``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fuzz(tmp_path: Path, runs: int, seconds: int) -> None:
    """Replay the corpus, then fuzz for at most ``runs`` inputs or ``seconds``."""
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz" / "corpus", corpus)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / "fuzz_parse.py"),
            f"-runs={runs}",
            f"-max_total_time={seconds}",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 105,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr or "DONE" in result.stderr, result.stderr[-2000:]


def test_fuzz_target_survives_a_short_run(tmp_path: Path) -> None:
    """The quick loop: the corpus and a few thousand mutations (a few seconds)."""
    fuzz(tmp_path, runs=5_000, seconds=10)


@pytest.mark.slow
def test_fuzz_target_finds_no_crash(tmp_path: Path) -> None:
    fuzz(tmp_path, runs=300_000, seconds=45)
