"""The end-to-end demo (``examples/demo.py``) runs to completion and reports success."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_and_benchmark_help_print_usage_without_running() -> None:
    for script in (DEMO, DEMO.parents[1] / "bench" / "core_bench.py"):
        result = subprocess.run(
            [sys.executable, str(script), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage:")
        assert "Demo OK" not in result.stdout and "best of" not in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_demo_runs_the_lifecycle_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"NO_COLOR": "1", "COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Demo OK: 7 events delivered, verified and handled exactly once" in result.stdout
    assert "Traceback" not in result.stderr
    assert "whsec_" not in result.stdout.replace("whsec_********", "")
    # the flaky dunning handler was retried: a 500 then a 200 for payment.failed
    failed_rows = [line for line in result.stdout.splitlines() if "payment.failed" in line]
    assert any("500 -> 200" in line for line in failed_rows), failed_rows
