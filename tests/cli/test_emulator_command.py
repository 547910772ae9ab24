"""``commet-webhooks emulator`` starts a real emulator; ``listen`` receives its deliveries."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx

import commet_webhooks

API_KEY = "ck_cli_test_key_51d2"


def test_emulator_delivers_signed_events_to_listen(
    cli: Any, start_command: Any, start_listener: Any, port: int, tmp_path: Path
) -> None:
    args = ["emulator", "--port", "PORT", "--db", str(tmp_path / "emu.db"), "--api-key", API_KEY]
    with start_command(args) as emulator, httpx.Client(base_url=emulator.url, timeout=10) as http:
        refused = http.get("/api/webhooks")
        assert refused.status_code == 401
        assert refused.json()["success"] is False

        headers = {"x-api-key": API_KEY}
        receiver_url = f"http://127.0.0.1:{port}/webhooks/commet"
        created = http.post(
            "/api/webhooks", json={"url": receiver_url, "events": []}, headers=headers
        )
        assert created.status_code in (200, 201), created.text
        secret = created.json()["data"]["secret"]
        assert secret.startswith("whsec_")

        with start_listener(secret, "--json", port=port) as listener:
            sent = http.post(
                "/api/emulator/events",
                json={"event": "payment.failed"},
                headers=headers,
            )
            assert sent.status_code in (200, 201, 202), sent.text
            got = listener.next_delivery(timeout=30)
        assert got["status"] == 200
        assert got["verified"] is True
        assert got["class"] == "PaymentFailed"
        assert got["envelope"]["id"] == sent.json()["data"]["id"]
        assert got["envelope"]["mode"] == "sandbox"
    assert API_KEY not in "\n".join(emulator.stderr)


def test_emulator_usage_errors(cli: Any, tmp_path: Path) -> None:
    bad_key = cli("emulator", "--api-key", "sk_live_nope", "--db", str(tmp_path / "a.db"))
    assert bad_key.returncode == 2
    assert "ck_" in bad_key.stderr
    assert "sk_live_nope" not in bad_key.stderr

    no_plans = cli("emulator", "--plans", str(tmp_path / "missing.json"))
    assert no_plans.returncode == 2

    zero_scale = cli("emulator", "--time-scale", "0")
    assert zero_scale.returncode == 2

    bad_plans_file = tmp_path / "plans.json"
    bad_plans_file.write_text("{not json")
    bad_plans = cli(
        "emulator", "--plans", str(bad_plans_file), "--db", str(tmp_path / "b.db"), "--port", "0"
    )
    assert bad_plans.returncode == 1
    assert "Traceback" not in bad_plans.stderr
    assert bad_plans.stderr.strip()
    bad_db = cli("emulator", "--db", str(tmp_path / "no" / "such" / "dir.db"), "--port", "0")
    assert bad_db.returncode == 1
    assert "cannot use the database" in bad_db.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = cli("emulator", "--port", str(port), "--db", str(tmp_path / "c.db"))
    assert taken.returncode == 1
    assert taken.stdout == ""  # no banner for an emulator that never started
    assert taken.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]

    for schedule in ("1,x", "1,,2", "-1", "nan"):
        bad_schedule = cli("emulator", "--retry-schedule", schedule, "--db", str(tmp_path / "d.db"))
        assert bad_schedule.returncode == 2, schedule
        assert "--retry-schedule" in bad_schedule.stderr
    zero_disable = cli("emulator", "--auto-disable-after", "0")
    assert zero_disable.returncode == 2

    for result in (bad_key, no_plans, zero_scale, bad_db, taken, bad_schedule, zero_disable):
        assert "Traceback" not in result.stderr


def test_retry_schedule_and_auto_disable_from_the_command_line(
    start_command: Any, tmp_path: Path
) -> None:
    args = [
        "emulator", "--port", "PORT", "--db", str(tmp_path / "emu.db"), "--api-key", API_KEY,
        "--retry-schedule", "0.05,0.05", "--auto-disable-after", "1",
    ]  # fmt: skip
    with (
        start_command(args) as emulator,
        httpx.Client(base_url=emulator.url, headers={"x-api-key": API_KEY}, timeout=10) as http,
    ):
        dead = http.post("/api/webhooks", json={"url": "http://127.0.0.1:9/nobody"}).json()
        http.post("/api/emulator/events", json={"event": "payment.failed"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (delivery,) = http.get("/api/emulator/deliveries").json()["data"]
            if delivery["status"] == "failed":
                break
            time.sleep(0.05)
        assert delivery["status"] == "failed"
        assert len(delivery["attempts"]) == 3  # the first attempt and the two retries
        endpoint = http.get(f"/api/webhooks/{dead['data']['id']}").json()["data"]
        assert endpoint["enabled"] is False  # disabled after one failed event


def test_module_entry_point_runs_the_emulator_help(cli: Any) -> None:
    result = cli("emulator", "--help")
    assert result.returncode == 0
    for option in (
        "--db", "--time-scale", "--api-key", "--allow-http", "--plans", "--port",
        "--retry-schedule", "--auto-disable-after",
    ):  # fmt: skip
        assert option in result.stdout
    assert commet_webhooks.__version__  # the package imported fine alongside
