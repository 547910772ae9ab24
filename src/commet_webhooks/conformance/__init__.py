"""Prove your own receiver behaves: a conformance suite run against your app.

>>> from commet_webhooks.conformance import run_suite
>>> report = run_suite("myapp.main:app", secret="whsec_...", probe="myapp.main:count_emails")
>>> report.assert_ok()

The same suite runs from the command line (``commet-webhooks check --app myapp.main:app``)
and from pytest (the ``commet_conformance`` fixture). In application code import only
:func:`simulate_crash`: it is light, and the suite's HTTP client is loaded on first use.
Rules and how to satisfy each: docs/testing.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._hooks import CRASH_MARKER, SimulatedCrash, simulate_crash

if TYPE_CHECKING:
    from ._suite import RULES, Outcome, Probe, Report, Rule, RuleResult, run_suite, url_probe
    from ._target import Receiver, ReceiverUnreachable, TargetError, open_receiver

__all__ = [
    "CRASH_MARKER",
    "RULES",
    "Outcome",
    "Probe",
    "Receiver",
    "ReceiverUnreachable",
    "Report",
    "Rule",
    "RuleResult",
    "SimulatedCrash",
    "TargetError",
    "open_receiver",
    "run_suite",
    "simulate_crash",
    "url_probe",
]

_LAZY = {
    "RULES": "_suite",
    "Outcome": "_suite",
    "Probe": "_suite",
    "Report": "_suite",
    "Rule": "_suite",
    "RuleResult": "_suite",
    "run_suite": "_suite",
    "url_probe": "_suite",
    "Receiver": "_target",
    "ReceiverUnreachable": "_target",
    "TargetError": "_target",
    "open_receiver": "_target",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
