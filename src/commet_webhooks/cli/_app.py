"""The ``commet-webhooks`` command line (Typer + Rich)."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional
from urllib.parse import urlsplit

try:
    import typer
    from rich.json import JSON
    from rich.markup import escape
    from rich.table import Table
    from typer import rich_utils
    from typer.core import TyperCommand, TyperGroup
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("the commet-webhooks CLI", "cli", exc) from exc

from .. import __version__
from .._signing import sign as sign_payload
from .._signing import verify as verify_signature
from ..events import EVENT_TYPES
from ..testing import signed_request
from ._common import (
    EXIT_FAILED,
    SECRET_ENV,
    bind_socket,
    console,
    err_console,
    fail,
    read_input,
    redact,
    require_secrets,
    warn,
)
from ._inbox import inbox_app
from ._platform import (
    ChaosOption,
    DeliveryTimeoutOption,
    ForwardToOption,
    NoAutoDisableOption,
    auto_disable,
    check_chaos,
    register,
)
from ._trigger import (
    OverrideError,
    build_event,
    complete_event_type,
    parse_assignment,
    suggest,
    unknown_fields,
)

__all__ = ["app"]

#: Help width when the output is not a terminal (a pipe, a file, a pager) and neither
#: COLUMNS nor TERMINAL_WIDTH says otherwise: wide enough for whole lines.
PIPED_HELP_WIDTH = 120


def _help_width() -> int | None:
    """The width help is rendered at: the terminal's own (None), or a wide default."""
    if os.environ.get("TERMINAL_WIDTH") or os.environ.get("COLUMNS"):
        return rich_utils.MAX_WIDTH  # Rich and Typer read these themselves
    try:
        if sys.stdout.isatty():
            return None  # Rich measures the terminal
    except (AttributeError, ValueError):  # a closed or replaced stdout
        pass
    return PIPED_HELP_WIDTH


rich_utils.MAX_WIDTH = _help_width()


def _flags_read_as_flags(params: Any) -> Any:
    """Give boolean flags an empty metavar, so help shows ``--json``, not ``--json <bool>``."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> Any:
        return _flags_read_as_flags(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> Any:
        return _flags_read_as_flags(super().get_params(ctx))


for _inbox_command in inbox_app.registered_commands:
    _inbox_command.cls = _Command


app = typer.Typer(
    name="commet-webhooks",
    help=(
        "Develop and test Commet webhooks offline: sign and verify payloads, send signed "
        "sample events, run a local receiver or a local Commet emulator.\n\n"
        "Exit codes: 0 ok, 1 a check failed (invalid signature, non-2xx answer, "
        "unreachable receiver), 2 usage error."
    ),
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(inbox_app, name="inbox", cls=_Group)

SecretOption = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time
    typer.Option(
        "--secret",
        "-s",
        envvar=SECRET_ENV,
        show_envvar=True,
        show_default=False,
        metavar="SECRET",
        help="Signing secret (whsec_...).",
    ),
]
SecretsOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--secret",
        "-s",
        envvar=SECRET_ENV,
        show_envvar=True,
        show_default=False,
        metavar="SECRET",
        help="Signing secret (whsec_...). Repeat to accept several while rotating.",
    ),
]
InputArgument = Annotated[
    str, typer.Argument(metavar="FILE|-", help="The raw body: a file, or - for standard input.")
]


def _version(value: bool) -> None:
    if value:
        console.print(f"commet-webhooks {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Develop and test Commet webhooks offline."""


@app.command(cls=_Command)
def sign(
    source: InputArgument,
    secret: SecretOption = None,
) -> None:
    """Print the X-Commet-Signature of a raw body (lowercase hex HMAC-SHA256)."""
    key = require_secrets([secret] if secret is not None else None)[0]
    print(sign_payload(read_input(source), key))


@app.command(cls=_Command)
def verify(
    source: InputArgument,
    signature: Annotated[
        str,
        typer.Option(
            "--signature", metavar="HEX", help="The X-Commet-Signature header value."
        ),
    ],
    secret: SecretsOption = None,
) -> None:
    """Check a signature against a raw body. Exit 0 when valid, 1 when not."""
    secrets = require_secrets(secret)
    body = read_input(source)
    if verify_signature(body, signature, secrets):
        console.print("[bold green]valid[/] signature")
        return
    err_console.print("[bold red]invalid[/] signature: it does not match this body and secret")
    raise typer.Exit(EXIT_FAILED)


@app.command(cls=_Command)
def events() -> None:
    """List the modelled event types, their Webhooks keyword and when they fire."""
    table = Table(title="Commet event types", title_justify="left")
    table.add_column("event  [dim](Webhooks keyword)[/]", no_wrap=True)
    table.add_column("when it fires")
    for name, spec in EVENT_TYPES.items():
        description = spec.description.replace("``", "")
        table.add_row(f"[bold cyan]{name}[/]\n[dim]{spec.handler_keyword}[/]", description)
    console.print(table)
    console.print(
        "[dim]Any other event type is still verified and reaches the catch-all handler.[/]"
    )


@app.command(cls=_Command)
def trigger(
    event: Annotated[
        str,
        typer.Argument(
            metavar="EVENT",
            help="Event type, e.g. subscription.activated (see `commet-webhooks events`).",
            autocompletion=complete_event_type,
        ),
    ],
    url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--url",
            "-u",
            metavar="URL",
            help="The receiver's webhook URL, path included (see the example above).",
        ),
    ] = None,
    secret: SecretOption = None,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--set",
            metavar="FIELD=VALUE",
            help=(
                "Override a field (repeatable). VALUE is JSON when it parses, else a string. "
                "Dotted fields set nested keys (previous_plan.name=Basic); id, timestamp, mode "
                "and api_version set the envelope."
            ),
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help=(
                "Do not send: print the headers on stderr and the exact body bytes on stdout "
                "(or into --output), so `verify` accepts them with the printed signature."
            ),
        ),
    ] = False,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            metavar="FILE",
            help="With --dry-run: write the exact body bytes to this file.",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, metavar="SECONDS", help="Seconds to wait for the answer."
        ),
    ] = 10.0,
) -> None:
    """Send a realistic, signed sample event to a receiver and show its answer.

    Example: commet-webhooks trigger payment.failed --url
    http://127.0.0.1:8000/webhooks/commet --set failure_code=expired_card

    Exit 0 on a 2xx answer, 1 on any other answer or when the receiver is unreachable.
    """
    key = require_secrets([secret] if secret is not None else None)[0]
    if event not in EVENT_TYPES:
        hint = suggest(event)
        warn(
            f"{event!r} is not a modelled event type"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + "; sending it anyway with the data you --set"
        )
    if output is not None and not dry_run:
        fail("--output only goes with --dry-run")
    try:
        assignments = [parse_assignment(item) for item in set_ or ()]
        envelope = build_event(event, assignments)
    except OverrideError as exc:
        fail(str(exc))
    for field in unknown_fields(event, [path for path, _ in assignments]):
        warn(f"{field!r} is not a field of {event} data; setting it anyway")
    body, headers = signed_request(envelope, key)
    if dry_run:
        _dry_run(body, headers, output)
        return
    if not url:
        fail("missing --url (or use --dry-run)")
    _check_url(url)
    _send(url, body, headers, envelope, timeout)


def _dry_run(body: bytes, headers: dict[str, str], output: Path | None) -> None:
    """Headers on stderr; the body, byte for byte as it would be sent, on stdout or a file."""
    for name, value in headers.items():
        err_console.print(f"[cyan]{name}[/]: {escape(value)}")
    if output is not None:
        try:
            output.write_bytes(body)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_FAILED)
        err_console.print(f"[dim]body ({len(body)} bytes) written to {escape(str(output))}[/]")
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()
    if sys.stdout.isatty():
        err_console.print()  # end the line on screen without adding a byte to the body


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"--url must be an http:// or https:// URL, got {url!r}")


def _send(
    url: str, body: bytes, headers: dict[str, str], envelope: dict[str, Any], timeout: float
) -> None:
    import httpx

    console.print(
        f"[bold]->[/] POST {escape(url)}  [cyan]{escape(envelope['event'])}[/] "
        f"[dim]{escape(str(envelope.get('id')))} ({len(body)} bytes)[/]"
    )
    started = time.perf_counter()
    try:
        answer = httpx.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        fail(f"no answer from {url} within {timeout:g} s", EXIT_FAILED)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {type(exc).__name__}: {exc}", EXIT_FAILED)
    elapsed = (time.perf_counter() - started) * 1000
    ok = answer.is_success
    colour = "green" if ok else "red"
    console.print(
        f"[bold]<-[/] [bold {colour}]{answer.status_code} {escape(answer.reason_phrase)}[/] "
        f"[dim]{elapsed:.1f} ms[/]"
    )
    _print_body(answer.content)
    if not ok:
        raise typer.Exit(EXIT_FAILED)


def _print_body(content: bytes) -> None:
    if not content:
        return
    try:
        json.loads(content)
    except ValueError:
        text = content[:2000].decode("utf-8", "replace")
        console.print(escape(text) + (" ..." if len(content) > 2000 else ""))
        return
    console.print(JSON(content.decode("utf-8")))


@app.command(cls=_Command)
def listen(
    secret: SecretsOption = None,
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, metavar="PORT", help="Port.")
    ] = 8000,
    path: Annotated[
        str, typer.Option("--path", metavar="PATH", help="Path that receives webhooks.")
    ] = "/webhooks/commet",
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print one JSON line per delivery (for scripts).")
    ] = False,
) -> None:
    """Run a local receiver that verifies each delivery and pretty-prints the event.

    Bad signatures are answered 403 and shown in red. Stop with Ctrl+C.
    """
    secrets = require_secrets(secret)
    try:
        import uvicorn

        from ._listen import build_receiver, json_delivery, print_delivery
    except ImportError as exc:
        fail(f"listen needs the cli extra (pip install 'commet-webhooks[cli]'): {exc}", 1)
    receiver = build_receiver(secrets, path, json_delivery if json_lines else print_delivery)
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_FAILED)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}{receiver.path}"
    keys = ", ".join(redact(s) for s in secrets)
    err_console.print(f"[bold]Listening[/] on [cyan]{escape(url)}[/]  secret {escape(keys)}")
    _suggest_trigger(url, secrets)
    config = uvicorn.Config(receiver, log_level="warning", access_log=False, lifespan="off")
    with sock:
        uvicorn.Server(config).run(sockets=[sock])


def _suggest_trigger(url: str, secrets: list[str]) -> None:
    """Print a ``trigger`` command that works when pasted into another shell.

    The secret itself is never printed: the command reads it from the environment
    variable, and the line above it says when that variable still has to be set.
    """
    from_env = os.environ.get(SECRET_ENV) in secrets
    where = (
        f"from a shell where {SECRET_ENV} is set, as it is here"
        if from_env
        else f"from another terminal, after export {SECRET_ENV}=<the secret you passed>"
    )
    err_console.print(f"[dim]Send a test event ({where}):[/]")
    command = (
        f"commet-webhooks trigger payment.failed --url {url} "
        f'--secret "${SECRET_ENV}"'
    )
    err_console.print("  " + escape(command), soft_wrap=True)


@app.command(cls=_Command)
def emulator(
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, metavar="PORT", help="Port.")
    ] = 8787,
    db: Annotated[
        Path,
        typer.Option(
            "--db", metavar="FILE", help="SQLite file for state and the delivery outbox."
        ),
    ] = Path("commet-emulator.db"),
    time_scale: Annotated[
        float,
        typer.Option(
            "--time-scale",
            min=0.001,
            metavar="FACTOR",
            help="Divide every retry delay by this factor.",
        ),
    ] = 1.0,
    api_key: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--api-key",
            envvar="COMMET_API_KEY",
            show_default=False,
            metavar="KEY",
            help="API key (ck_...) clients must send; generated and printed when omitted.",
        ),
    ] = None,
    allow_http: Annotated[
        bool,
        typer.Option("--allow-http", help="Accept plain http:// endpoints beyond loopback."),
    ] = False,
    plans: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--plans",
            exists=True,
            dir_okay=False,
            metavar="FILE",
            help="JSON file replacing the plan catalog.",
        ),
    ] = None,
    retry_schedule: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--retry-schedule",
            metavar="SECONDS,...",
            show_default=False,
            help=(
                "Delays between delivery attempts, comma-separated seconds; divided by "
                "--time-scale. Default: Commet's schedule, 60, 300, 900, 1800, 3600, 3600 "
                "and 3600 s (8 attempts)."
            ),
        ),
    ] = None,
    auto_disable_after: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--auto-disable-after",
            min=1,
            metavar="N",
            show_default=False,
            help="Disable an endpoint after N events in a row whose delivery failed (default 3).",
        ),
    ] = None,
    no_auto_disable: NoAutoDisableOption = False,
    delivery_timeout: DeliveryTimeoutOption = None,
    forward_to: ForwardToOption = None,
    chaos: ChaosOption = None,
) -> None:
    """Run a local Commet: webhook endpoints, billing simulation, state API and dashboard."""
    if api_key is not None and not api_key.startswith("ck_"):
        fail("--api-key must start with ck_")
    schedule = _parse_schedule(retry_schedule) if retry_schedule is not None else None
    try:
        from ..emulator import run
    except ImportError as exc:
        fail(f"the emulator is not available ({exc}); pip install 'commet-webhooks[cli]'", 1)
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_FAILED)
    try:
        with sock:
            run(
                host=host,
                port=port,
                db_path=str(db),
                api_key=api_key,
                time_scale=time_scale,
                allow_http=allow_http,
                plans_file=str(plans) if plans is not None else None,
                retry_schedule=schedule,
                auto_disable_after=auto_disable(auto_disable_after, no_auto_disable),
                timeout=delivery_timeout,
                forward_to=forward_to,
                chaos=check_chaos(chaos),
                sock=sock,
            )
    except sqlite3.Error as exc:
        fail(f"cannot use the database {db}: {exc}", EXIT_FAILED)
    except (ValueError, OSError) as exc:
        fail(str(exc), EXIT_FAILED)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise typer.Exit(EXIT_FAILED) from None


def _parse_schedule(text: str) -> list[float]:
    """``"60,300,900"`` -> ``[60.0, 300.0, 900.0]``, or a usage error naming the bad part."""
    delays: list[float] = []
    for part in text.split(","):
        try:
            delay = float(part)
        except ValueError:
            fail(f"--retry-schedule expects comma-separated seconds (e.g. 60,300), got {part!r}")
        if not 0 <= delay < float("inf"):
            fail(f"--retry-schedule delays must be non-negative seconds, got {part.strip()!r}")
        delays.append(delay)
    return delays


from ._check import check  # noqa: E402 - registered last, like the commands above

app.command(cls=_Command)(check)
register(app)  # the webhooks and clock groups
