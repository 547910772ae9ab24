"""The ``commet-webhooks`` command line: ``sign``, ``verify``, ``trigger``, ``listen``,
``events`` and ``emulator``. Run ``commet-webhooks --help``.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Entry point of the ``commet-webhooks`` console script."""
    try:
        from ._app import app
    except ImportError as exc:
        from .._optional import MissingExtraError

        if isinstance(exc, MissingExtraError):  # already names the extra: say it once
            print(f"commet-webhooks: {exc}", file=sys.stderr)
        else:
            print(
                f"commet-webhooks: the command line needs the cli extra "
                f"(pip install 'commet-webhooks[cli]'): {exc}",
                file=sys.stderr,
            )
        raise SystemExit(1) from None
    app(prog_name="commet-webhooks")
