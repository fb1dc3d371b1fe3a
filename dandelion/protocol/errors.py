"""Error codes carried by `error` events, and the exception that produces them."""

from __future__ import annotations

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
    }
)


class ProtocolError(Exception):
    """A client message the server cannot accept: an `error` event, never a closed socket."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES
