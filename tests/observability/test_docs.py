"""docs/observability.md cannot rot: its Python blocks run in order, and the app they build works."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from commet_webhooks import OffloadedDelivery
from commet_webhooks.observability import METRICS
from support.servers import serve_asgi

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text("utf-8"), flags=re.S)


def test_the_python_blocks_run_and_serve_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    # The docs use prometheus_client's default registry: give them a fresh one.
    import prometheus_client
    from prometheus_client import registry as registry_module

    fresh = CollectorRegistry()
    monkeypatch.setattr(prometheus_client, "REGISTRY", fresh)
    monkeypatch.setattr(registry_module, "REGISTRY", fresh)

    namespace: dict[str, Any] = {"__name__": "docs_observability"}
    python = blocks("python")
    assert len(python) >= 5
    for code in python:
        exec(compile(code, str(DOC), "exec"), namespace)

    webhooks, app = namespace["webhooks"], namespace["app"]
    assert webhooks.observer is namespace["observer"]
    from commet_webhooks.testing import sample_event, signed_request

    body, headers = signed_request(sample_event("payment.failed"), "whsec_...")
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=30.0) as http:
        assert http.post("/webhooks/commet", content=body, headers=headers).status_code == 200
        scraped = http.get("/metrics/").text
    assert (
        'commet_webhooks_deliveries_total{event_type="payment.failed",outcome="ok"} 1.0' in scraped
    )

    # The observer of "Your own observer" reads what the core recorded: a slow handler.
    audited = namespace["audited"]

    def slow(event: Any) -> None:
        import time

        time.sleep(0.12)

    audited.on("payment.failed")(slow)
    warnings: list[logging.LogRecord] = []
    slow_log = logging.getLogger("myapp.webhooks")
    catcher = logging.Handler()
    catcher.emit = warnings.append  # type: ignore[method-assign]
    slow_log.addHandler(catcher)
    try:
        assert audited.handle_sync(body, headers).status == 200
    finally:
        slow_log.removeHandler(catcher)
    (warning,) = warnings
    assert "slow" in warning.getMessage() and "took 0.1" in warning.getMessage()

    # The worker task of the docs runs a delivery the way a queue hands it over.
    delivery = OffloadedDelivery(body, headers["X-Commet-Signature"], None, "payment.failed", "now")
    namespace["run_task"](json.loads(json.dumps(delivery.to_message())))


def test_the_metrics_table_lists_every_metric_and_the_json_example_parses() -> None:
    text = DOC.read_text("utf-8")
    for spec in METRICS:
        assert f"`{spec.prometheus}`" in text
    (example,) = blocks("json")
    record = json.loads(example)
    assert {"event_id", "event_type", "outcome", "secret_fingerprint"} <= set(record)
