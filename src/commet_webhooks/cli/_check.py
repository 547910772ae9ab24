"""``commet-webhooks check``: the receiver conformance suite, with Rich output."""

from __future__ import annotations

import json
import os
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..dispatch import DEFAULT_MAX_BODY_BYTES
from ._common import EXIT_FAILED, SECRET_ENV, console, err_console, fail, redact
from ._trigger import complete_event_type

__all__ = ["check"]

_MARKS = {
    "passed": "[bold green]PASS[/]",
    "failed": "[bold red]FAIL[/]",
    "not checked": "[bold yellow]SKIP[/]",
}


def check(
    app: Annotated[
        Optional[list[str]],  # noqa: UP045 - Typer reads the annotation at run time
        typer.Option(
            "--app",
            "-a",
            metavar="MODULE:APP",
            show_default=False,
            help=(
                "Your app, run in this process: myapp.main:app or path/to/app.py:app (ASGI, "
                "WSGI, aiohttp, or a factory). A second instance is built for the "
                "two-worker rule; give --app twice to name it yourself."
            ),
        ),
    ] = None,
    url: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--url",
            "-u",
            metavar="URL",
            show_default=False,
            help="Your running receiver's URL. Give a second instance's URL as a second --url.",
        ),
    ] = None,
    secret: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--secret",
            "-s",
            metavar="SECRET",
            envvar=SECRET_ENV,
            show_envvar=True,
            show_default=False,
            help="The signing secret your receiver verifies with (whsec_...).",
        ),
    ] = None,
    path: Annotated[
        str, typer.Option("--path", metavar="PATH", help="Where --app receives webhooks.")
    ] = "/webhooks/commet",
    probe: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--probe",
            metavar="MODULE:FUNCTION",
            show_default=False,
            help="A function returning how many times the probed handler's effect happened.",
        ),
    ] = None,
    probe_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--probe-url",
            metavar="URL",
            show_default=False,
            help='A URL answering that count (a JSON number, {"count": n} or plain text).',
        ),
    ] = None,
    probe_event: Annotated[
        str,
        typer.Option(
            "--probe-event",
            metavar="EVENT",
            help="The event type whose handler the probe counts.",
            autocompletion=complete_event_type,
        ),
    ] = "subscription.activated",
    max_body_bytes: Annotated[
        int,
        typer.Option(
            "--max-body-bytes", min=1, metavar="BYTES", help="Your receiver's body size limit."
        ),
    ] = DEFAULT_MAX_BODY_BYTES,
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            min=0.0,
            metavar="SECONDS",
            help="Seconds to wait for an effect that should not happen (raise for queues).",
        ),
    ] = 0.0,
    rule: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--rule", metavar="RULE", show_default=False, help="Run only this rule (repeatable)."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Also exit 1 when a rule could not be checked.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (for scripts).")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, metavar="SECONDS", help="Seconds to wait for each answer."
        ),
    ] = 30.0,
) -> None:
    """Check that your receiver behaves: signatures, raw body, duplicates, retries, limits.

    Exit 0 when no rule failed, 1 when one did (or nothing answers at --url), 2 on a
    usage error. Rules that need
    something you did not give (an effect probe, a second instance) are shown as
    SKIP with what to give. Run it against a test database: it sends real events.
    """
    from ..conformance import ReceiverUnreachable, RuleResult, TargetError, run_suite

    targets = [*(app or ()), *(url or ())]
    if not targets:
        fail("give your receiver: --app MODULE:APP (in this process) or --url URL")
    if app and url:
        fail("give --app or --url, not both")
    if len(targets) > 2:
        fail("give one receiver, or two instances of it")
    if not secret or not secret.strip():
        fail(f"a signing secret is required: pass --secret or set {SECRET_ENV}")
    if probe and probe_url:
        fail("give --probe or --probe-url, not both")
    # An in-process app that reads its secret from the environment gets the same one.
    os.environ.setdefault(SECRET_ENV, secret)

    def show(result: RuleResult) -> None:
        if json_output:
            return
        console.print(f"{_MARKS[result.outcome.value]}  [bold]{result.rule}[/]: {result.title}")
        style = "red" if result.outcome.value == "failed" else "dim"
        console.print(f"      [{style}]{escape(result.detail)}[/]")

    if not json_output:
        shown = ", ".join(escape(t) for t in targets)
        err_console.print(f"[bold]Checking[/] {shown}  [dim]secret {redact(secret)}[/]")
    try:
        report = run_suite(
            *targets,
            secret=secret,
            path=path,
            probe=probe or probe_url,
            probe_event=probe_event,
            max_body_bytes=max_body_bytes,
            settle=settle,
            timeout=timeout,
            rules=rule,
            on_result=show,
        )
    except ReceiverUnreachable as exc:
        fail(str(exc), EXIT_FAILED)
    except (TargetError, ValueError) as exc:
        fail(str(exc))
    failed, skipped = len(report.failed), len(report.not_checked)
    if json_output:
        print(
            json.dumps(
                {
                    "target": report.target,
                    "ok": report.ok,
                    "results": [
                        {
                            "rule": r.rule,
                            "title": r.title,
                            "outcome": r.outcome.value,
                            "detail": r.detail,
                        }
                        for r in report.results
                    ],
                },
                indent=2,
            )
        )
    else:
        passed = len(report.results) - failed - skipped
        colour = "red" if failed else "green"
        console.print(
            f"\n[bold {colour}]{passed} passed, {failed} failed[/], {skipped} not checked"
        )
    if failed or (strict and skipped):
        raise typer.Exit(EXIT_FAILED)
