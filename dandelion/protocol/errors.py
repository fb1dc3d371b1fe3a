"""Error codes carried by `error` events, the exception that produces them, and what of an
error's text a client may see."""

from __future__ import annotations

import re
from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"
    UNKNOWN_EVENT = "unknown_event"
    INVALID_EVENT = "invalid_event"
    INVALID_AUDIO_FRAME = "invalid_audio_frame"
    MESSAGE_TOO_LARGE = "message_too_large"
    ASR_FAILED = "asr_failed"
    LLM_FAILED = "llm_failed"
    TTS_FAILED = "tts_failed"
    # An LLM server (llm.backend: openai) refused or failed the turn's request.
    LLM_UNAUTHORIZED = "llm_unauthorized"
    LLM_NOT_FOUND = "llm_not_found"
    LLM_RATE_LIMITED = "llm_rate_limited"
    LLM_UNAVAILABLE = "llm_unavailable"
    LLM_TIMEOUT = "llm_timeout"
    INTERNAL_ERROR = "internal_error"
    # Limits (dandelion/admission.py): the session was refused or is being slowed or ended.
    SERVER_BUSY = "server_busy"
    RATE_LIMITED = "rate_limited"
    SESSION_EXPIRED = "session_expired"
    # Another connection resumed this conversation (its resume token): this one is closed.
    SESSION_TAKEN_OVER = "session_taken_over"


# Errors a client may retry as-is (the server or a model stage had a transient fault).
RETRYABLE_CODES = frozenset(
    {
        ErrorCode.ASR_FAILED,
        ErrorCode.LLM_FAILED,
        ErrorCode.TTS_FAILED,
        ErrorCode.INTERNAL_ERROR,
        # Transient on the LLM server's side; a wrong key, URL or model name is not.
        ErrorCode.LLM_RATE_LIMITED,
        ErrorCode.LLM_UNAVAILABLE,
        ErrorCode.LLM_TIMEOUT,
        # Retry later (`retry_after_s`), more slowly, or on a new session.
        ErrorCode.SERVER_BUSY,
        ErrorCode.RATE_LIMITED,
        ErrorCode.SESSION_EXPIRED,
    }
)

# What a client is told of a server-side failure. Its own text (an exception's, which across
# Ray is a traceback naming actor ids, hosts, pids and paths) stays in the server's log, under
# the error_id the client gets.
_PUBLIC_MESSAGES = {
    ErrorCode.ASR_FAILED: "transcription failed for this turn",
    ErrorCode.LLM_FAILED: "the language model failed on this turn",
    ErrorCode.TTS_FAILED: "speech synthesis failed for this turn",
    ErrorCode.INTERNAL_ERROR: "internal server error",
}
MAX_PUBLIC_MESSAGE_CHARS = 300
_CODES = frozenset(code.value for code in ErrorCode)
_REDACTIONS = (
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE), "[address]"),  # URLs
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "[address]"),  # IPv4[:port]
    (re.compile(r"\[?\b(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{0,4}\b\]?", re.IGNORECASE), "[address]"),
    # Compressed IPv6 (::1, fe80::1%eth0, [::1]:8000): always has "::".
    (
        re.compile(
            r"\[?(?<![\w:])(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?::"
            r"(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?(?:%\w+)?\]?(?::\d+)?",
            re.IGNORECASE,
        ),
        "[address]",
    ),
    # Host names without a scheme: with a port (redis.internal:6379, localhost:8000), or
    # ending in a domain a network uses (llm.prod.svc.cluster.local, api.example.com).
    (
        re.compile(r"\b(?:[a-z0-9-]+\.)*[a-z0-9-]*[a-z][a-z0-9-]*:\d{1,5}\b", re.IGNORECASE),
        "[address]",
    ),
    (
        re.compile(
            r"\b(?:[a-z0-9-]+\.)+(?:local|localdomain|internal|intranet|lan|home|corp|svc|"
            r"com|net|org|io|ai|dev|cloud|example)\b",
            re.IGNORECASE,
        ),
        "[address]",
    ),
    (re.compile(r"\blocalhost\b", re.IGNORECASE), "[address]"),
    (re.compile(r"(?:\b[a-z]:)?(?:[\\/][\w.@~+-]+){2,}[\\/]?", re.IGNORECASE), "[path]"),
    # One segment (/models, /srv): a slash that starts a word, not one inside it (and/or).
    (re.compile(r"(?<![\w/.:~-])/[\w.@~+-]*[a-z_][\w.@~+-]*", re.IGNORECASE), "[path]"),
    (re.compile(r"\b(?:actor|task|job|node|worker|object)[ _-]?id\b\W*\w*", re.IGNORECASE), "[id]"),
    (re.compile(r"\bpid\s*[=:]?\s*\d+", re.IGNORECASE), "[pid]"),
    (re.compile(r"\b[0-9a-f]{16,}\b", re.IGNORECASE), "[id]"),  # Ray's ids are long hex
)


def public_message(code: str, message: str) -> str:
    """What a client may read of an error: a fixed sentence for a server-side failure; for the
    rest (a message the server wrote about the client's input, or about an LLM server's
    answer), its first line with any address, path, pid or id replaced, at most
    MAX_PUBLIC_MESSAGE_CHARS characters."""
    if code not in _CODES:
        return "error"
    fixed = _PUBLIC_MESSAGES.get(ErrorCode(code))
    if fixed is not None:
        return fixed
    text = message.strip().split("Traceback", 1)[0]
    text = (text.splitlines() or [""])[0]
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    if len(text) > MAX_PUBLIC_MESSAGE_CHARS:
        text = text[: MAX_PUBLIC_MESSAGE_CHARS - 3] + "..."
    return text


class ProtocolError(Exception):
    """A client message the server cannot accept: an `error` event, never a closed socket."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES
