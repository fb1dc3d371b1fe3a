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


def require_file(path: str, what: str, hint: str) -> str:
    from pathlib import Path

    if not Path(path).exists():
        raise ModelNotFoundError(f"{what} not found at {path!r}. {hint}")
    return path
