"""What the suite and the plugin cost, and say, when the testing extra is missing."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


HIDE_HTTPX = (
    "import sys\n"
    "for name in [m for m in sys.modules if m.split('.')[0] == 'httpx']:\n"
    "    del sys.modules[name]\n"
    "sys.modules['httpx'] = None  # as if not installed\n"
)


def test_the_crash_hook_imports_nothing_heavy() -> None:
    result = run(
        "import sys\n"
        "from commet_webhooks.conformance import simulate_crash\n"
        "heavy = {'httpx', 'pytest', 'starlette', 'typer', 'rich', 'uvicorn'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_suite_without_httpx_names_the_testing_extra() -> None:
    result = run(HIDE_HTTPX + "from commet_webhooks.conformance import run_suite\n")
    assert result.returncode != 0
    assert 'pip install "commet-webhooks[testing]"' in result.stderr, result.stderr[-800:]


def test_the_plugin_loads_without_httpx() -> None:
    """pytest loads the plugin in every project that has the package, extra or not."""
    result = run(HIDE_HTTPX + "import commet_webhooks.pytest_plugin\nprint('ok')\n")
    assert result.stdout.strip() == "ok", result.stderr[-800:]
