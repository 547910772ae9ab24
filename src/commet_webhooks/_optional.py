"""Clear errors for optional dependencies that are not installed."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(module: str, extra: str, error: ImportError) -> ImportError:
    """An ImportError that says which extra to install, keeping the original as context."""
    missing = error.name or str(error)
    return ImportError(
        f"{module} needs the optional dependency {missing!r}: "
        f'pip install "commet-webhooks[{extra}]"',
        name=error.name,
    )
