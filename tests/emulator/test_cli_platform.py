"""The command line of the platform tools: ``emulator --forward-to``, ``webhooks`` and
``clock``, each run as a real subprocess against a real emulator."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from commet_webhooks import verify
from emulator.emulator_helpers import Receiver
from support.cli import cli_env, run_cli, running
from support.net import free_port

KEY = "ck_cli_platform_key_93c1"


def test_forward_to_webhooks_and_clock_from_the_command_line(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    recorder, url = receiver
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [
        "emulator", "--port", str(port), "--db", str(tmp_path / "emu.db"), "--api-key", KEY,
        "--forward-to", url, "--delivery-timeout", "5",
    ]  # fmt: skip
    env = cli_env(COMMET_API_KEY=KEY, COMMET_EMULATOR_URL=base)
    with running(args, port, base) as emulator:
        banner = [emulator.next_line() for _ in range(4)]
        assert banner[2] == f"Forwarding every event to {url}"
        secret = banner[3].removeprefix("Signing secret: ")
        assert secret.startswith("whsec_")
        assert "8 attempts, 5 s timeout, auto-disable after 3 failed events" in banner[1]

        listed = run_cli("webhooks", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        assert url in listed.stdout and "active" in listed.stdout and "all" in listed.stdout

        with httpx.Client(base_url=base, headers={"x-api-key": KEY}) as http:
            http.post("/api/v1/customers", json={"externalId": "u", "email": "u@example.com"})
            sub = http.post(
                "/api/v1/subscriptions", json={"customerId": "u", "planId": "plan_starter"}
            ).json()["data"]
            http.post(f"/api/emulator/subscriptions/{sub['id']}/pay")

        advanced = run_cli("clock", "advance", "--days", "65", env=env)
        assert advanced.returncode == 0, advanced.stderr
        assert advanced.stdout.count("billing_cycle") == 2
        assert "2 billing deadline(s) run" in advanced.stdout
        shown = run_cli("clock", "get", env=env)
        assert shown.returncode == 0 and "simulated" in shown.stdout

        created = run_cli("webhooks", "create", url + "?second", "-e", "payment.failed",
                          "--description", "ops", env=env)  # fmt: skip
        assert created.returncode == 0, created.stderr
        endpoint_id = created.stdout.split()[1]
        assert "signing secret: whsec_" in created.stdout
        tested = run_cli("webhooks", "test", endpoint_id, env=env)
        assert tested.returncode == 0 and "delivered" in tested.stdout
        disabled = run_cli("webhooks", "update", endpoint_id, "--disable", env=env)
        assert disabled.returncode == 0 and "(disabled)" in disabled.stdout
        nothing = run_cli("webhooks", "update", endpoint_id, env=env)
        assert nothing.returncode == 2
        deleted = run_cli("webhooks", "delete", endpoint_id, env=env)
        assert deleted.returncode == 0
        gone = run_cli("webhooks", "delete", endpoint_id, env=env)
        assert gone.returncode == 1 and "not found" in gone.stderr
        wrong_key = run_cli("clock", "get", env={**env, "COMMET_API_KEY": "ck_wrong_key"})
        assert wrong_key.returncode == 1 and "ck_wrong_key" not in wrong_key.stderr

    kinds = {json.loads(r.body)["event"] for r in recorder.requests}
    assert {"subscription.activated", "invoice.upcoming", "invoice.created"} <= kinds
    for request in recorder.requests:
        if request.headers["x-commet-event"] != "payment.failed":  # the test send has its own
            assert verify(request.body, request.headers["x-commet-signature"], secret)
    for result in (listed, advanced, created, tested, disabled, nothing, gone, wrong_key):
        assert "Traceback" not in result.stderr


def test_platform_commands_say_when_the_emulator_is_not_there() -> None:
    env = cli_env(COMMET_API_KEY=KEY, COMMET_EMULATOR_URL=f"http://127.0.0.1:{free_port()}")
    result = run_cli("clock", "get", env=env)
    assert result.returncode == 1 and "cannot reach the emulator" in result.stderr
    no_key = run_cli("webhooks", "list", env=cli_env())
    assert no_key.returncode == 2 and "--api-key" in no_key.stderr
    both = run_cli("clock", "advance", "--days", "1", "--to", "2030-01-01T00:00:00Z", env=env)
    assert both.returncode == 2
