"""Errors raised by model backends and stages. Each says whether retrying could help."""

from __future__ import annotations


class DandelionError(Exception):
    retryable = False


class ModelNotFoundError(DandelionError):
    """A configured model is absent: name what was looked for and how to get it."""


class BackendUnavailableError(DandelionError):
    """The Python package behind a backend is not installed."""


class NoFaceFoundError(DandelionError):
    """The avatar's portrait photo shows no face the landmark detector can find."""


class StageError(DandelionError):
    """A model stage failed while serving a turn; the session goes on."""

    retryable = True


class SettingsError(DandelionError):
    """A settings or suite file that cannot be read or breaks its schema: says where and why."""


def validation_summary(exc: Exception) -> str:
    """A pydantic ValidationError as one line per error, `where.in.the.file: what is wrong`."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)


def require_file(path: str, what: str, hint: str) -> str:
    from pathlib import Path

    if not Path(path).exists():
        raise ModelNotFoundError(f"{what} not found at {path!r}. {hint}")
    return path
