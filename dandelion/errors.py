"""Errors raised by model backends and stages. Each says whether retrying could help."""

from __future__ import annotations

from dandelion.protocol.errors import RETRYABLE_CODES, ErrorCode


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


class LLMServiceError(StageError):
    """An LLM server refused or failed a turn's request: `code` (an `ErrorCode`) says which way.

    The message names the server and model and what to check, never the API key. Raised in
    the LLM replica, it reaches the gateway wrapped by Ray in an exception that is still an
    LLMServiceError, its `code` and `message` those of the original.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = code in RETRYABLE_CODES

    def __reduce__(self) -> tuple[type[LLMServiceError], tuple[ErrorCode, str]]:
        # Pickled across Ray: rebuilt from both arguments (Exception's default passes `args`).
        return type(self), (self.code, self.message)


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
