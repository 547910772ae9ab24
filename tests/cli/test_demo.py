"""The end-to-end demo (``examples/demo.py``) runs to completion and reports success."""

from __future__ import annotations

import re
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
    done = re.search(r"Demo OK: (\d+) events of (\d+) types delivered, verified and handled "
                     r"exactly once", result.stdout)  # fmt: skip
    assert done is not None, result.stdout[-2000:]
    assert int(done.group(1)) > 50 and int(done.group(2)) > 25  # a year of one subscription
    assert "Traceback" not in result.stderr
    assert "whsec_" not in result.stdout.replace("whsec_********", "")
    # the simulated outage is announced, and its event took two attempts, handled once
    assert "simulated outage:" in result.stdout
    (failed_row,) = [line for line in result.stdout.splitlines() if "│ payment.failed " in line]
    assert [cell.strip() for cell in failed_row.split("│")[3:6]] == ["1", "2", "1"]
