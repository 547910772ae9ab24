"""The engine-independent worker pieces: resolving the worker's Webhooks, backoff, records."""

from __future__ import annotations

import multiprocessing
import os
import sys
import types

import pytest

from commet_webhooks import Webhooks
from commet_webhooks.offload import (
    DEAD_OUTCOMES,
    DONE_OUTCOMES,
    RETRY_OUTCOMES,
    DeadLetter,
    backoff,
    resolve_webhooks,
)

SECRET = "whsec_common_unit"


def test_outcome_classes_cover_what_a_worker_can_see_and_do_not_overlap() -> None:
    worker_outcomes = {
        "ok", "duplicate", "handler_error", "busy", "store_unavailable",
        "invalid_signature", "invalid_payload", "accepted_raw",
    }  # fmt: skip
    classes = [RETRY_OUTCOMES, DONE_OUTCOMES, DEAD_OUTCOMES]
    assert {o.value for c in classes for o in c} == worker_outcomes
    assert sum(len(c) for c in classes) == len(worker_outcomes)


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter() -> None:
    assert [backoff(n, 2, 600, jitter=False) for n in range(4)] == [2, 4, 8, 16]
    assert backoff(20, 2, 600, jitter=False) == 600
    for n in range(10):
        plain = backoff(n, 1, 100, jitter=False)
        assert plain <= backoff(n, 1, 100) <= min(100, plain * 1.25)


def test_resolve_by_instance_factory_and_import_string(monkeypatch: pytest.MonkeyPatch) -> None:
    webhooks = Webhooks(SECRET)
    module = types.ModuleType("offload_resolve_example")
    module.webhooks = webhooks  # type: ignore[attr-defined]
    module.make = lambda: webhooks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    calls: list[int] = []

    def factory() -> Webhooks:
        calls.append(1)
        return webhooks

    get = resolve_webhooks(factory)
    assert get() is webhooks and get() is webhooks and calls == [1]  # once per process
    assert resolve_webhooks(webhooks)() is webhooks
    assert resolve_webhooks("offload_resolve_example:webhooks")() is webhooks
    assert resolve_webhooks("offload_resolve_example:make")() is webhooks
    with pytest.raises(ValueError, match="module:name"):
        resolve_webhooks("no_colon")()
    with pytest.raises(TypeError, match="did not give a Webhooks"):
        resolve_webhooks(lambda: 42)()
    with pytest.raises(TypeError, match="zero-argument factory"):
        resolve_webhooks(42)


_MADE: list[int] = []


def _factory() -> Webhooks:
    _MADE.append(os.getpid())
    return Webhooks(SECRET)


def _child(get: object, out: multiprocessing.SimpleQueue) -> None:  # type: ignore[type-arg]
    get()  # type: ignore[operator]
    get()  # type: ignore[operator]
    out.put(list(_MADE))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_a_forked_pool_child_resolves_its_own() -> None:
    get = resolve_webhooks(_factory)
    get()
    fork = multiprocessing.get_context("fork")
    out = fork.SimpleQueue()
    child = fork.Process(target=_child, args=(get, out))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    made_in_child = out.get()
    # Inherited the parent's, then made its own once: never the parent's store sockets.
    assert made_in_child[0] == os.getpid() and len(made_in_child) == 2
    assert made_in_child[1] == child.pid
    assert [os.getpid()] == _MADE


def test_dead_letter_record_round_trips() -> None:
    record = DeadLetter({"event_id": "whev_1", "event_type": "payment.failed"}, "busy", 9)
    again = DeadLetter.from_record(record.to_record())
    assert again == record and again.event_id == "whev_1" and again.event_type == "payment.failed"
    with pytest.raises(ValueError, match="not an offloaded"):
        again.delivery()


@pytest.mark.parametrize(
    ("module", "hidden", "extra"),
    [
        ("commet_webhooks.celery", "celery", "celery"),
        ("commet_webhooks.celery", "kombu", "celery"),
        ("commet_webhooks.offload.dramatiq", "dramatiq", "dramatiq"),
    ],
)
def test_an_engine_without_its_extra_names_the_extra(module: str, hidden: str, extra: str) -> None:
    import subprocess

    code = (
        "import sys\n"
        f"for name in [m for m in sys.modules if m == {hidden!r} or m.startswith({hidden!r} + '.')]:\n"
        "    del sys.modules[name]\n"
        f"sys.modules[{hidden!r}] = None\n"
        f"import {module}\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert f'pip install "commet-webhooks[{extra}]"' in result.stderr.strip().splitlines()[-1]
