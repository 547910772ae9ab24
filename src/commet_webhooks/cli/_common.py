"""Shared pieces of the command line: consoles, user errors, input, secrets, sockets."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "SECRET_ENV",
    "bind_socket",
    "console",
    "err_console",
    "fail",
    "read_input",
    "redact",
    "require_secrets",
    "warn",
]

#: Exit codes scripts can rely on.
EXIT_OK = 0
EXIT_FAILED = 1  # a check failed: invalid signature, non-2xx answer, unreachable receiver
EXIT_USAGE = 2  # the command line or its input is wrong

#: Environment variable read as the default signing secret.
SECRET_ENV = "COMMET_WEBHOOK_SECRET"  # noqa: S105 - the name of a variable, not a secret

console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print a one-line error on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print a one-line warning on stderr."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}")


def read_input(source: str) -> bytes:
    """The bytes of ``source``: a file path, or ``-`` for standard input."""
    if source == "-":
        return sys.stdin.buffer.read()
    if source.startswith(("whsec_", "ck_")):
        # A secret typed where the file goes: never echo it back.
        fail(f"{redact(source)} looks like a secret, not a file: pass secrets with --secret")
    path = Path(source)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        fail(f"file not found: {source}")
    except IsADirectoryError:
        fail(f"{source} is a directory, not a file")
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}")


def require_secrets(secrets: list[str] | None) -> list[str]:
    """The given signing secrets, or a usage error when none (or an empty one) was given."""
    if not secrets:
        fail(f"a signing secret is required: pass --secret or set {SECRET_ENV}")
    if any(not s.strip() for s in secrets):
        fail("--secret must not be empty")
    return secrets


def redact(secret: str) -> str:
    """A display form of ``secret`` that keeps its kind (``whsec_``) and nothing else."""
    prefix, sep, _ = secret.partition("_")
    return f"{prefix}_********" if sep and prefix in ("whsec", "ck") else "********"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (raises ``OSError`` when unavailable)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
