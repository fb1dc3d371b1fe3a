"""Encode and decode wire messages. Pure: no I/O, no clock."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from dandelion.protocol.errors import ErrorCode, ProtocolError
from dandelion.protocol.events import (
    AudioIn,
    ClientEvent,
    ConversationGet,
    Ping,
    ResponseCancel,
    ServerEvent,
    SessionUpdate,
)

SESSION_PATH = "/v1/session"
"""The WebSocket route of a session on the gateway."""
PROTOCOL_VERSION = "dandelion.v1"
INPUT_SAMPLE_RATE = 16_000
INPUT_CHANNELS = 1
# 2 s of input audio; clients send 20-100 ms frames.
MAX_AUDIO_FRAME_BYTES = 64 * 1024
MAX_TEXT_MESSAGE_BYTES = 64 * 1024
MAX_INSTRUCTIONS_CHARS = 8_000
VIDEO_CODECS = ("off", "jpeg", "h264")
TURN_DETECTIONS = ("semantic", "silence")  # end of turn by meaning, or by a fixed silence
EAGERNESS = ("low", "medium", "high")

# magic, version, kind, reserved, turn_id, seq, pts_us
_MEDIA_HEADER = struct.Struct("<4sBBHIIQ")
MEDIA_MAGIC = b"DNDL"
MEDIA_VERSION = 1
MEDIA_HEADER_SIZE = _MEDIA_HEADER.size
# Media of no turn: the avatar's idle frames between replies (turn ids of replies start at 1).
IDLE_TURN_ID = 0


class MediaKind(IntEnum):
    AUDIO = 1
    VIDEO = 2


@dataclass(frozen=True, slots=True)
class MediaFrame:
    """A server->client binary frame: response media of one turn, stamped on the turn's clock."""

    kind: int  # a MediaKind; clients skip kinds they do not know
    turn_id: int
    seq: int
    pts_us: int
    payload: bytes


def encode_media_frame(frame: MediaFrame) -> bytes:
    header = _MEDIA_HEADER.pack(
        MEDIA_MAGIC, MEDIA_VERSION, int(frame.kind), 0, frame.turn_id, frame.seq, frame.pts_us
    )
    return header + frame.payload


def decode_media_frame(data: bytes) -> MediaFrame:
    if len(data) < MEDIA_HEADER_SIZE:
        raise ValueError(f"media frame of {len(data)} bytes is shorter than its header")
    magic, version, kind, _reserved, turn_id, seq, pts_us = _MEDIA_HEADER.unpack_from(data)
    if magic != MEDIA_MAGIC or version != MEDIA_VERSION:
        raise ValueError(f"not a {PROTOCOL_VERSION} media frame (magic={magic!r} v={version})")
    return MediaFrame(kind, turn_id, seq, pts_us, bytes(data[MEDIA_HEADER_SIZE:]))


def encode_server_event(event: ServerEvent) -> str:
    body = event.to_dict()
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii() and not is_unicode(text):
        # A lone surrogate has no UTF-8 form: sent raw, it fails in the proxy and drops the
        # connection (1006). Escaped (\ud800), it is valid JSON in an ASCII text frame.
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    return text


def is_unicode(text: str) -> bool:
    """Whether `text` has a UTF-8 form: no lone surrogate (from a JSON escape like \\ud800)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_client_message(message: str | bytes) -> ClientEvent:
    """Turn one WebSocket message into a client event, or raise ProtocolError."""
    if isinstance(message, bytes | bytearray | memoryview):
        return _decode_audio(bytes(message))
    return _decode_text(message)


def _decode_audio(data: bytes) -> AudioIn:
    if len(data) > MAX_AUDIO_FRAME_BYTES:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"audio frame of {len(data)} bytes exceeds {MAX_AUDIO_FRAME_BYTES}; "
            "send 20-100 ms frames",
        )
    if len(data) == 0 or len(data) % 2:
        raise ProtocolError(
            ErrorCode.INVALID_AUDIO_FRAME,
            f"audio frame of {len(data)} bytes is not whole PCM16 samples (need an even, "
            "non-zero length); frame dropped",
        )
    return AudioIn(data)


def _decode_text(text: str) -> ClientEvent:
    if len(text) > MAX_TEXT_MESSAGE_BYTES:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"text message of {len(text)} characters exceeds {MAX_TEXT_MESSAGE_BYTES}",
        )
    try:
        body = json.loads(text, parse_int=_parse_int, parse_constant=_not_json_constant)
    except json.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.INVALID_JSON, f"message is not JSON: {exc}") from None
    except RecursionError:
        # Valid JSON, but deeper than the parser goes (about 1,000 levels): RFC 8259 §9 lets a
        # parser limit nesting. Not an internal error: the message is refused, as bad JSON.
        raise ProtocolError(ErrorCode.INVALID_JSON, "message is JSON nested too deeply") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise ProtocolError(ErrorCode.INVALID_EVENT, "an event is a JSON object with a 'type'")
    kind = body["type"]
    if kind == SessionUpdate.type:
        return _decode_session_update(body)
    if kind == ResponseCancel.type:
        return ResponseCancel()
    if kind == ConversationGet.type:
        return ConversationGet()
    if kind == Ping.type:
        return Ping()
    raise ProtocolError(ErrorCode.UNKNOWN_EVENT, f"unknown event type {kind[:64]!r}")


def _parse_int(digits: str) -> int | float:
    """A JSON integer; a very long one as a float. Every integer field of the protocol is small,
    so a range check still refuses it, and nothing pays for (or trips Python's 4,300-digit
    limit on) converting thousands of digits."""
    if len(digits) > 20:
        return float(digits)
    return int(digits)


def _not_json_constant(name: str) -> float:
    """NaN, Infinity and -Infinity: Python's json reads them, RFC 8259 has no such numbers."""
    raise ProtocolError(ErrorCode.INVALID_JSON, f"message is not JSON: {name} is not a number")


def _decode_session_update(body: dict[str, Any]) -> SessionUpdate:
    session = body.get("session", {})
    if not isinstance(session, dict):
        raise ProtocolError(ErrorCode.INVALID_EVENT, "session.update needs a 'session' object")
    known = {"instructions", "end_of_turn_silence_ms", "video", "turn_detection", "eagerness"}
    unknown = sorted(set(session) - known)
    if unknown:
        # Named back in part: the client's own keys, up to 64 KiB of them, are not echoed whole.
        names = [name[:64] for name in unknown[:5]]
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ProtocolError(
            ErrorCode.INVALID_EVENT, f"session.update: unknown fields {names}{more}"
        )
    instructions = session.get("instructions")
    if instructions is not None and (
        not isinstance(instructions, str) or len(instructions) > MAX_INSTRUCTIONS_CHARS
    ):
        raise ProtocolError(
            ErrorCode.INVALID_EVENT,
            f"instructions must be a string of at most {MAX_INSTRUCTIONS_CHARS} characters",
        )
    if instructions is not None and not is_unicode(instructions):
        # Kept, a lone surrogate would fail every reply (the LLM's tokenizer wants UTF-8).
        raise ProtocolError(
            ErrorCode.INVALID_EVENT, "instructions must be Unicode text (no lone surrogates)"
        )
    silence = session.get("end_of_turn_silence_ms")
    if silence is not None and (
        isinstance(silence, bool) or not isinstance(silence, int) or not 100 <= silence <= 5000
    ):
        raise ProtocolError(
            ErrorCode.INVALID_EVENT, "end_of_turn_silence_ms must be an integer in [100, 5000]"
        )
    video = session.get("video")
    if video is not None and video not in VIDEO_CODECS:
        raise ProtocolError(
            ErrorCode.INVALID_EVENT, f"video must be one of {', '.join(VIDEO_CODECS)}"
        )
    detection = session.get("turn_detection")
    if detection is not None and detection not in TURN_DETECTIONS:
        raise ProtocolError(
            ErrorCode.INVALID_EVENT, f"turn_detection must be one of {', '.join(TURN_DETECTIONS)}"
        )
    eagerness = session.get("eagerness")
    if eagerness is not None and eagerness not in EAGERNESS:
        raise ProtocolError(
            ErrorCode.INVALID_EVENT, f"eagerness must be one of {', '.join(EAGERNESS)}"
        )
    return SessionUpdate(
        instructions=instructions,
        end_of_turn_silence_ms=silence,
        video=video,
        turn_detection=detection,
        eagerness=eagerness,
    )
