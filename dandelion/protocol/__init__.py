"""The wire protocol between a client and the gateway (documented in docs/protocol.md)."""

from dandelion.protocol.codec import (
    IDLE_TURN_ID,
    INPUT_CHANNELS,
    INPUT_SAMPLE_RATE,
    MAX_AUDIO_FRAME_BYTES,
    MAX_TEXT_MESSAGE_BYTES,
    MEDIA_HEADER_SIZE,
    PROTOCOL_VERSION,
    SESSION_PATH,
    MediaFrame,
    MediaKind,
    decode_client_message,
    decode_media_frame,
    encode_media_frame,
    encode_server_event,
)
from dandelion.protocol.errors import ErrorCode, ProtocolError

__all__ = [
    "IDLE_TURN_ID",
    "INPUT_CHANNELS",
    "INPUT_SAMPLE_RATE",
    "MAX_AUDIO_FRAME_BYTES",
    "MAX_TEXT_MESSAGE_BYTES",
    "MEDIA_HEADER_SIZE",
    "PROTOCOL_VERSION",
    "SESSION_PATH",
    "ErrorCode",
    "MediaFrame",
    "MediaKind",
    "ProtocolError",
    "decode_client_message",
    "decode_media_frame",
    "encode_media_frame",
    "encode_server_event",
]
