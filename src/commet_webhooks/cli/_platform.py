"""``webhooks`` and ``clock``: the platform's developer tools against a running emulator,
and the emulator's ``--forward-to`` one-liner.

``commet-webhooks webhooks list|create|update|delete|test`` manage webhook endpoints
through ``/api/v1/webhooks``; ``commet-webhooks clock get|advance --days N`` read and
move the test clock. Both talk to ``--emulator`` (default ``http://127.0.0.1:8787``)
with ``--api-key`` (or ``COMMET_API_KEY``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NoReturn, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._common import EXIT_FAILED, console, fail, redact

__all__ = [
    "ChaosOption",
    "DeliveryTimeoutOption",
    "ForwardToOption",
    "NoAutoDisableOption",
    "auto_disable",
    "check_chaos",
    "register",
]

EMULATOR_ENV = "COMMET_EMULATOR_URL"
API_KEY_ENV = "COMMET_API_KEY"

# Options of the `emulator` command (declared here, used in its signature).
ForwardToOption = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time
    typer.Option(
        "--forward-to",
        metavar="URL",
        show_default=False,
        help=(
            "Register an endpoint for every event at URL (your app's webhook route) and "
            "print its signing secret: the app receives the lifecycle with no setup."
        ),
    ),
]
DeliveryTimeoutOption = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        "--delivery-timeout",
        min=0.1,
        metavar="SECONDS",
        show_default=False,
        help="Seconds a receiver has to answer an attempt (default 10, as on the platform).",
    ),
]
NoAutoDisableOption = Annotated[
    bool,
    typer.Option(
        "--no-auto-disable",
        help="Never disable an endpoint (the platform disables one after 3 failed events).",
    ),
]


ChaosOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--chaos",
        metavar="NAME=P,...",
        show_default=False,
        help=(
            "Faults production networks cause, as probabilities: duplicates, reorder, delay, "
            "drop (and max_delay seconds, seed), e.g. \"duplicates=0.1, reorder=0.2\"."
        ),
    ),
]


def check_chaos(text: str | None) -> str | None:
    """``--chaos`` as given, or a usage error saying what is wrong with it."""
    if text is None:
        return None
    from ..emulator.chaos import parse_chaos

    try:
        parse_chaos(text)
    except ValueError as exc:
        fail(f"--chaos: {exc}")
    return text


def auto_disable(after: int | None, never: bool) -> int | Literal["default"] | None:
    """The emulator's ``auto_disable_after`` for the command-line flags."""
    if never:
        return None
    return "default" if after is None else after


EmulatorOption = Annotated[
    str,
    typer.Option(
        "--emulator",
        envvar=EMULATOR_ENV,
        show_envvar=True,
        help="Base URL of the running emulator.",
    ),
]
KeyOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--api-key",
        envvar=API_KEY_ENV,
        show_envvar=True,
        show_default=False,
        help="The emulator's API key (ck_...), as it printed at start-up.",
    ),
]
DEFAULT_EMULATOR = "http://127.0.0.1:8787"

webhooks_app = typer.Typer(
    name="webhooks",
    help="Manage the webhook endpoints of a running emulator (the platform's /api/v1/webhooks).",
    no_args_is_help=True,
)
clock_app = typer.Typer(
    name="clock",
    help="Read or advance the test clock of a running emulator; due billing work runs in order.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``webhooks`` and ``clock`` groups to the command line."""
    app.add_typer(webhooks_app)
    app.add_typer(clock_app)


# ---------------------------------------------------------------------- talking to the API


def _call(
    base: str, key: str | None, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """One v1 call; the answer's ``data``, or exit 1 with the platform's error message."""
    import httpx

    if not key:
        fail(f"missing --api-key (or {API_KEY_ENV}); the emulator prints its key at start-up")
    try:
        answer = httpx.request(
            method,
            base.rstrip("/") + "/api/v1" + path,
            json=body,
            headers={"x-api-key": key},
            timeout=120,
        )
    except httpx.HTTPError as exc:
        _unreachable(base, exc)
    try:
        payload = answer.json()
    except ValueError:
        fail(f"{base} answered {answer.status_code} without JSON: is it the emulator?", EXIT_FAILED)
    if answer.is_success and isinstance(payload, dict) and payload.get("success") is True:
        return payload.get("data")
    error = payload.get("error", {}) if isinstance(payload, dict) else {}
    message = str(error.get("message") or f"HTTP {answer.status_code}").replace(key, redact(key))
    fail(f"{method} {path}: {message}", EXIT_FAILED)


def _unreachable(base: str, exc: Exception) -> NoReturn:
    fail(f"cannot reach the emulator at {base} ({type(exc).__name__}); is it running?", EXIT_FAILED)


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------------- webhooks


@webhooks_app.command("list")
def list_endpoints(emulator: EmulatorOption = DEFAULT_EMULATOR, api_key: KeyOption = None) -> None:
    """List the webhook endpoints: URL, events, active or disabled, pinned API version."""
    rows: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = _call(emulator, api_key, "GET", "/webhooks?limit=100" + cursor)
        rows += page["data"]
        if not page.get("hasMore"):
            break
        cursor = "&cursor=" + page["nextCursor"]
    if not rows:
        console.print("[dim]No endpoint yet: commet-webhooks webhooks create URL[/]")
        return
    table = Table(title="Webhook endpoints", title_justify="left")
    for column in ("id", "url", "events", "state", "apiVersion", "description"):
        table.add_column(column)
    for row in rows:
        events = row["events"]
        shown = "all" if "*" in events else f"{len(events)}: " + ", ".join(events[:3])
        if len(events) > 3 and "*" not in events:
            shown += ", ..."
        state = "[green]active[/]" if row["isActive"] else "[red]disabled[/]"
        table.add_row(
            row["id"],
            escape(row["url"]),
            escape(shown),
            state,
            row.get("apiVersion") or "-",
            escape(row.get("description") or ""),
        )
    console.print(table)


EventOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--event",
        "-e",
        metavar="TYPE",
        help="An event type to receive (repeatable); default: every event ('*').",
    ),
]


@webhooks_app.command("create")
def create_endpoint(
    url: Annotated[str, typer.Argument(help="Where to POST events.")],
    event: EventOption = None,
    description: Annotated[
        Optional[str], typer.Option("--description", help="A note for the endpoint.")  # noqa: UP045
    ] = None,
    api_version: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--api-version", help="Pin the envelopes' apiVersion (YYYY-MM-DD)."),
    ] = None,
    emulator: EmulatorOption = DEFAULT_EMULATOR,
    api_key: KeyOption = None,
) -> None:
    """Create an endpoint and print its signing secret (shown only this once)."""
    body: dict[str, Any] = {"url": url, "events": event or ["*"]}
    if description is not None:
        body["description"] = description
    if api_version is not None:
        body["apiVersion"] = api_version
    created = _call(emulator, api_key, "POST", "/webhooks", body)
    console.print(f"[bold green]created[/] {created['id']} -> {escape(created['url'])}")
    console.print(f"signing secret: [bold]{created['secretKey']}[/]  [dim](shown once)[/]")


@webhooks_app.command("update")
def update_endpoint(
    endpoint_id: Annotated[str, typer.Argument(metavar="ID")],
    url: Annotated[Optional[str], typer.Option("--url", help="A new URL.")] = None,  # noqa: UP045
    event: EventOption = None,
    description: Annotated[Optional[str], typer.Option("--description")] = None,  # noqa: UP045
    active: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--enable/--disable", help="Re-enable (e.g. after auto-disable) or disable."),
    ] = None,
    api_version: Annotated[Optional[str], typer.Option("--api-version")] = None,  # noqa: UP045
    emulator: EmulatorOption = DEFAULT_EMULATOR,
    api_key: KeyOption = None,
) -> None:
    """Change an endpoint; only the options given change."""
    body: dict[str, Any] = {}
    for name, value in (
        ("url", url),
        ("events", event),
        ("description", description),
        ("isActive", active),
        ("apiVersion", api_version),
    ):
        if value is not None:
            body[name] = value
    if not body:
        fail(
            "nothing to change: give --url, --event, --description, --enable/--disable "
            "or --api-version"
        )
    updated = _call(emulator, api_key, "PATCH", f"/webhooks/{endpoint_id}", body)
    state = "active" if updated["isActive"] else "disabled"
    console.print(f"[bold]updated[/] {updated['id']} ({state})")


@webhooks_app.command("delete")
def delete_endpoint(
    endpoint_id: Annotated[str, typer.Argument(metavar="ID")],
    emulator: EmulatorOption = DEFAULT_EMULATOR,
    api_key: KeyOption = None,
) -> None:
    """Delete an endpoint; its pending deliveries are canceled."""
    _call(emulator, api_key, "DELETE", f"/webhooks/{endpoint_id}")
    console.print(f"[bold]deleted[/] {endpoint_id}")


@webhooks_app.command("test")
def test_endpoint(
    endpoint_id: Annotated[str, typer.Argument(metavar="ID")],
    emulator: EmulatorOption = DEFAULT_EMULATOR,
    api_key: KeyOption = None,
) -> None:
    """Send the endpoint a signed sample event now. Exit 1 when it did not answer 2xx."""
    result = _call(emulator, api_key, "POST", f"/webhooks/{endpoint_id}/test")
    if result["success"]:
        console.print(f"[bold green]delivered[/] ({result['deliveryId']})")
        return
    console.print(f"[bold red]failed[/] ({result['deliveryId']}): see the attempt on the dashboard")
    raise typer.Exit(EXIT_FAILED)


# ---------------------------------------------------------------------- clock


def _print_clock(clock: dict[str, Any]) -> None:
    moved = "simulated" if clock["isActive"] else "real time (never advanced)"
    console.print(f"test clock: [bold]{_when(clock['now'])}[/]  [dim]{moved}[/]")


@clock_app.command("get")
def clock_get(emulator: EmulatorOption = DEFAULT_EMULATOR, api_key: KeyOption = None) -> None:
    """Show the simulated time and the last run."""
    clock = _call(emulator, api_key, "GET", "/test-clock")
    _print_clock(clock)
    run = clock.get("latestRun")
    if run:
        console.print(
            f"last run: {_when(run['startedAtTime'])} -> {_when(run['targetTime'])}, "
            f"{run['completedDeadlineCount']} billing deadline(s), {run['status']}"
        )


@clock_app.command("advance")
def clock_advance(
    days: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--days", "-d", min=1, max=3660, help="Days to move forward."),
    ] = None,
    to: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--to", metavar="ISO-TIME", help="Move to this time (e.g. 2027-01-01T00:00:00Z)."
        ),
    ] = None,
    emulator: EmulatorOption = DEFAULT_EMULATOR,
    api_key: KeyOption = None,
) -> None:
    """Move the clock forward, running every renewal, trial end, retry and notice due."""
    if (days is None) == (to is None):
        fail("give exactly one of --days N or --to ISO-TIME")
    body: dict[str, Any] = {"advanceDays": days} if days is not None else {"frozenTime": to}
    run = _call(emulator, api_key, "POST", "/test-clock", body)
    for item in run["items"]:
        invoice = f" {item['invoiceNumber']}" if item.get("invoiceNumber") else ""
        console.print(
            f"  {_when(item['dueAt'])}  {item['kind']:<13} {item['subscriptionId']}"
            f"{invoice} -> {item.get('outcome') or item['status']}"
        )
    console.print(
        f"[bold]advanced[/] to {_when(run['targetTime'])}: "
        f"{run['completedDeadlineCount']} billing deadline(s) run"
    )
