"""Zero cost when off: nothing imports OpenTelemetry or prometheus_client unless asked."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


HEAVY = "{'opentelemetry', 'prometheus_client'}"


def test_the_core_and_the_observability_module_import_neither() -> None:
    result = run(
        "import sys, commet_webhooks, commet_webhooks.observability\n"
        "from commet_webhooks import Webhooks\n"
        "from commet_webhooks.observability import instrument\n"
        "webhooks = Webhooks('whsec_x')\n"
        "instrument(webhooks, tracing=False, metrics=False, prometheus=False)\n"
        "webhooks.handle_sync(b'{}', {})\n"
        f"print(sorted({HEAVY} & {{m.split('.')[0] for m in sys.modules}}))\n"
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_instrument_by_default_uses_what_is_installed_and_skips_the_rest() -> None:
    result = run(
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if not installed\n"
        "from commet_webhooks import Webhooks\n"
        "from commet_webhooks.observability import instrument\n"
        "observer = instrument(Webhooks('whsec_x'))\n"
        "print(observer.tracing, observer.metrics)\n"
    )
    assert result.stdout.strip() == "True ('otel',)", result.stdout + result.stderr


def test_asking_for_a_missing_extra_names_it() -> None:
    for hidden, option, extra in (
        ("opentelemetry", "tracing=True", "otel"),
        ("prometheus_client", "prometheus=True", "prometheus"),
    ):
        result = run(
            "import sys\n"
            f"sys.modules[{hidden!r}] = None\n"
            "from commet_webhooks import Webhooks\n"
            "from commet_webhooks.observability import instrument\n"
            f"instrument(Webhooks('whsec_x'), {option})\n"
        )
        assert result.returncode != 0
        last = result.stderr.strip().splitlines()[-1]
        assert f'pip install "commet-webhooks[{extra}]"' in last, result.stderr[-800:]


def test_a_webhooks_with_its_own_observer_is_not_silently_replaced() -> None:
    import pytest

    from commet_webhooks import Observer, Webhooks
    from commet_webhooks.observability import instrument, uninstrument

    webhooks = Webhooks("whsec_x", observer=Observer())
    with pytest.raises(ValueError, match="already has an observer"):
        instrument(webhooks, tracing=False, metrics=False, prometheus=False)
    plain = Webhooks("whsec_x")
    instrument(plain, tracing=False, metrics=False, prometheus=False)
    again = instrument(plain, tracing=False, metrics=False, prometheus=False)
    assert plain.observer is again
    uninstrument(plain)
    assert plain.observer is None
    with pytest.raises(TypeError, match="takes a Webhooks"):
        instrument(object())  # type: ignore[arg-type]
