"""Run the coverage-guided fuzz target for a bounded number of inputs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fuzz_target_finds_no_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz" / "corpus", corpus)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / "fuzz_parse.py"),
            "-runs=300000",
            "-max_total_time=45",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr or "DONE" in result.stderr, result.stderr[-2000:]
