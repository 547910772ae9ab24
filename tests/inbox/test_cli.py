"""``commet-webhooks inbox``: list, show, replay (with its plan) and prune, as a subprocess."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from inbox_helpers import InboxSpec

from commet_webhooks import Webhooks
from commet_webhooks.inbox import InboxStore, Status
from commet_webhooks.testing import sample_event, signed_request
from support.cli import cli_env, run_cli
from support.net import free_port

APP = """
import os
from pathlib import Path
from commet_webhooks import Webhooks
from commet_webhooks.inbox import open_inbox

def handler(event):
    with open(os.environ["EFFECTS"], "a") as out:
        out.write(event.id + "\\n")

inbox = open_inbox(os.environ["INBOX_URL"], table=os.environ["INBOX_TABLE"],
                   schema=os.environ.get("INBOX_SCHEMA") or None)
webhooks = Webhooks(os.environ["SECRET"], idempotency_store=inbox, on_payload=handler)
"""


def _store_args(spec: InboxSpec) -> list[str]:
    args = ["--store", spec.target, "--table", spec.options.get("table", "commet_webhook_inbox")]
    if "schema" in spec.options:
        args += ["--schema", spec.options["schema"]]
    return args


@pytest.fixture
def populated(
    kind: str, make_spec: Callable[[str], InboxSpec], build: Any, secret: str
) -> tuple[InboxSpec, InboxStore]:
    spec = make_spec(kind)
    if kind == "sqlite":
        spec = InboxSpec("sqlite", spec.target, {"table": "events"})
    inbox: InboxStore = build(spec)

    def broken(event: Any) -> None:
        raise RuntimeError("handler bug")

    failing = Webhooks(secret, idempotency_store=inbox, on_payment_failed=broken)
    for n in range(3):
        failing.handle_sync(*signed_request(sample_event("payment.failed", id=f"evt_f{n}"), secret))
    failing.handle_sync(*signed_request(sample_event("invoice.created", id="evt_ok"), secret))
    return spec, inbox


def test_list_shows_a_table_and_json(populated: tuple[InboxSpec, InboxStore]) -> None:
    spec, _ = populated
    table = run_cli("inbox", "list", *_store_args(spec))
    assert table.returncode == 0, table.stderr
    assert "Inbox: 4 of 4 event(s)" in table.stdout
    assert "evt_f2" in table.stdout and "RuntimeError: handler bug" in table.stdout
    assert "done 1" in table.stdout and "failed 3" in table.stdout

    only = run_cli("inbox", "list", *_store_args(spec), "--status", "done", "--json")
    rows = [json.loads(line) for line in only.stdout.splitlines()]
    assert [(r["id"], r["status"], r["attempts"]) for r in rows] == [("evt_ok", "done", 1)]
    typed = run_cli("inbox", "list", *_store_args(spec), "--type", "payment.failed", "--json")
    assert len(typed.stdout.splitlines()) == 3
    recent = run_cli("inbox", "list", *_store_args(spec), "--since", "1h", "--json")
    assert len(recent.stdout.splitlines()) == 4
    future = run_cli("inbox", "list", *_store_args(spec), "--since", "2099-01-01", "--json")
    assert future.returncode == 0 and future.stdout == ""


def test_show_prints_the_record_and_body(populated: tuple[InboxSpec, InboxStore]) -> None:
    spec, inbox = populated
    shown = run_cli("inbox", "show", "evt_f1", *_store_args(spec), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["status"] == "failed" and data["type"] == "payment.failed"
    assert data["body"].encode() == inbox.get("evt_f1").body  # type: ignore[union-attr]
    pretty = run_cli("inbox", "show", "evt_f1", *_store_args(spec))
    assert '"organizationId"' in pretty.stdout and "last_error" in pretty.stdout
    missing = run_cli("inbox", "show", "evt_nope", *_store_args(spec))
    assert missing.returncode == 1 and "no event 'evt_nope'" in missing.stderr


def test_replay_plan_then_run_brings_failed_events_to_done_once(
    populated: tuple[InboxSpec, InboxStore], tmp_path: Path, secret: str
) -> None:
    spec, inbox = populated
    app = tmp_path / "receiver_app.py"
    app.write_text(APP)
    effects = tmp_path / "effects.txt"
    env = cli_env(
        EFFECTS=str(effects),
        INBOX_URL=spec.target,
        INBOX_TABLE=spec.options.get("table", ""),
        INBOX_SCHEMA=spec.options.get("schema", ""),
        SECRET=secret,
    )

    dry = run_cli("inbox", "replay", *_store_args(spec), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "Replay plan (dry run)" in dry.stdout
    assert "3 event(s) would run, 0 would be skipped; nothing was run." in dry.stdout
    assert not effects.exists()

    ran = run_cli("inbox", "replay", *_store_args(spec), "--app", f"{app}:webhooks", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "3 event(s) ran: 3 done, 0 not done; 0 skipped." in ran.stdout
    assert sorted(effects.read_text().split()) == ["evt_f0", "evt_f1", "evt_f2"]
    assert inbox.counts() == {Status.DONE: 4}

    again = run_cli(
        "inbox", "replay", "evt_f0", *_store_args(spec), "--app", f"{app}:webhooks", env=env
    )
    assert again.returncode == 0 and "skip: already handled" in again.stdout
    forced = run_cli(
        "inbox", "replay", "evt_f0", "--force", "--app", f"{app}:webhooks", env=env
    )  # the inbox comes from the app
    assert forced.returncode == 0, forced.stderr
    assert sorted(effects.read_text().split()) == ["evt_f0", "evt_f0", "evt_f1", "evt_f2"]
    assert inbox.get("evt_f0").attempts == 3  # type: ignore[union-attr]  # live, replay, forced


def test_prune_dry_run_then_delete(populated: tuple[InboxSpec, InboxStore]) -> None:
    spec, inbox = populated
    plan = run_cli("inbox", "prune", *_store_args(spec), "--older-than", "0s", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "would delete 4 event(s)" in plan.stdout and len(inbox.list()) == 4
    done = run_cli("inbox", "prune", *_store_args(spec), "--older-than", "0s", "--status", "failed")
    assert done.returncode == 0 and "deleted 3 event(s)" in done.stdout
    assert [r.key for r in inbox.list()] == ["evt_ok"]
    kept = run_cli("inbox", "prune", *_store_args(spec))
    assert "deleted 0 event(s)" in kept.stdout  # within the default keep of 30 days


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    cases = [
        (["inbox", "list"], "pass --store URL"),
        (["inbox", "list", "--store", "redis://127.0.0.1"], "not an inbox URL"),
        (["inbox", "list", "--store", db, "--status", "bogus"], "unknown status 'bogus'"),
        (["inbox", "list", "--store", db, "--since", "yesterday"], "--since must be"),
        (["inbox", "replay", "--store", db], "pass --app"),
        (["inbox", "replay", "--store", db, "--app", "nomodule"], "--app must be"),
        (["inbox", "replay", "--store", db, "--app", "no_such_mod_x:w"], "could not import"),
        (["inbox", "replay", "e1", "--status", "failed", "--store", db, "--dry-run"], "not both"),
        (["inbox", "prune", "--store", db, "--older-than", "soon"], "--older-than must be"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.postgres
def test_unreachable_postgres_exits_1_without_the_password() -> None:
    from support.services import postgres_url

    url = postgres_url(port=free_port(), password="pw-sesame-42")
    result = run_cli("inbox", "list", "--store", url, timeout=60)
    assert result.returncode == 1
    assert "unavailable" in result.stderr and "sesame" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
