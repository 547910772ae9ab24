"""Clear errors for optional dependencies that are not installed."""

from __future__ import annotations

__all__ = ["MissingExtraError", "missing_extra"]


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, message: str, *, extra: str, name: str | None) -> None:
        super().__init__(message, name=name)
        self.extra = extra


def missing_extra(module: str, extra: str, error: ImportError) -> MissingExtraError:
    """An ImportError that says, once, which extra to install.

    Raise it ``from error``: the original error stays attached as the cause, for
    debugging, while this message is complete on its own.
    """
    missing = (error.name or str(error)).split(".")[0]  # the package, not its submodule
    return MissingExtraError(
        f"{module} needs {missing!r}, which is not installed: "
        f'pip install "commet-webhooks[{extra}]"',
        extra=extra,
        name=error.name,
    )
