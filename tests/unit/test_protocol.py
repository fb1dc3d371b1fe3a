"""Wire codec: media frames, client message decoding, server event encoding."""

from __future__ import annotations

import json
import struct

import pytest

from dandelion.protocol import (
    MAX_AUDIO_FRAME_BYTES,
    MAX_TEXT_MESSAGE_BYTES,
    MEDIA_HEADER_SIZE,
    PROTOCOL_VERSION,
    ErrorCode,
    MediaFrame,
    MediaKind,
    ProtocolError,
    decode_client_message,
    decode_media_frame,
    encode_media_frame,
    encode_server_event,
)
from dandelion.protocol import events as ev
from dandelion.protocol.codec import MAX_INSTRUCTIONS_CHARS, MEDIA_MAGIC, MEDIA_VERSION

# ---------------------------------------------------------------- media frames


@pytest.mark.parametrize(
    "frame",
    [
        MediaFrame(MediaKind.AUDIO, turn_id=1, seq=0, pts_us=0, payload=b"\x01\x02" * 160),
        MediaFrame(MediaKind.VIDEO, turn_id=7, seq=42, pts_us=1_234_567, payload=b"jpeg"),
        MediaFrame(MediaKind.AUDIO, 2**32 - 1, seq=2**32 - 1, pts_us=2**64 - 1, payload=b""),
    ],
)
def test_media_frame_round_trip(frame: MediaFrame) -> None:
    data = encode_media_frame(frame)
    assert len(data) == MEDIA_HEADER_SIZE + len(frame.payload)
    decoded = decode_media_frame(data)
    assert decoded == frame
    assert isinstance(decoded.payload, bytes)


def test_media_header_layout() -> None:
    data = encode_media_frame(MediaFrame(MediaKind.VIDEO, 3, 4, 5, b"xy"))
    assert MEDIA_HEADER_SIZE == 24
    assert data[:4] == MEDIA_MAGIC == b"DNDL"
    assert data[4] == MEDIA_VERSION
    assert data[5] == MediaKind.VIDEO
    assert struct.unpack_from("<HIIQ", data, 6) == (0, 3, 4, 5)  # little-endian
    assert data[MEDIA_HEADER_SIZE:] == b"xy"


def test_decode_media_frame_accepts_bytearray_and_memoryview() -> None:
    frame = MediaFrame(MediaKind.AUDIO, 1, 2, 3, b"abcd")
    data = encode_media_frame(frame)
    assert decode_media_frame(bytearray(data)) == frame  # type: ignore[arg-type]
    assert decode_media_frame(memoryview(data)) == frame  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 1, MEDIA_HEADER_SIZE - 1])
def test_decode_media_frame_rejects_short_frames(length: int) -> None:
    data = encode_media_frame(MediaFrame(MediaKind.AUDIO, 1, 2, 3, b""))[:length]
    with pytest.raises(ValueError, match="shorter than its header"):
        decode_media_frame(data)


def test_decode_media_frame_rejects_bad_magic() -> None:
    data = b"XXXX" + encode_media_frame(MediaFrame(MediaKind.AUDIO, 1, 2, 3, b"ab"))[4:]
    with pytest.raises(ValueError, match=PROTOCOL_VERSION):
        decode_media_frame(data)


def test_decode_media_frame_rejects_bad_version() -> None:
    data = bytearray(encode_media_frame(MediaFrame(MediaKind.AUDIO, 1, 2, 3, b"ab")))
    data[4] = MEDIA_VERSION + 1
    with pytest.raises(ValueError, match="v=2"):
        decode_media_frame(bytes(data))


def test_decode_media_frame_passes_unknown_kinds_through() -> None:
    # A newer server may add kinds: an older client must be able to skip them.
    data = bytearray(encode_media_frame(MediaFrame(MediaKind.AUDIO, 1, 2, 3, b"ab")))
    data[5] = 9
    frame = decode_media_frame(bytes(data))
    assert frame.kind == 9 and frame.payload == b"ab"


# ---------------------------------------------------------------- client audio


def expect_error(message: str | bytes, code: ErrorCode) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_client_message(message)
    assert info.value.code is code
    assert info.value.message == str(info.value)
    assert not info.value.retryable
    return info.value


@pytest.mark.parametrize("length", [2, 640, 3200, MAX_AUDIO_FRAME_BYTES])
def test_audio_frame_of_even_length(length: int) -> None:
    pcm = bytes(range(256)) * (length // 256) + bytes(length % 256)
    event = decode_client_message(pcm)
    assert event == ev.AudioIn(pcm)
    assert isinstance(event, ev.AudioIn)
    assert type(event.pcm) is bytes


def test_audio_frame_from_bytearray_and_memoryview() -> None:
    pcm = b"\x00\x01" * 10
    assert decode_client_message(bytearray(pcm)) == ev.AudioIn(pcm)  # type: ignore[arg-type]
    event = decode_client_message(memoryview(pcm))  # type: ignore[arg-type]
    assert isinstance(event, ev.AudioIn)
    assert event == ev.AudioIn(pcm)
    assert type(event.pcm) is bytes


@pytest.mark.parametrize("length", [1, 3, 641, MAX_AUDIO_FRAME_BYTES - 1])
def test_audio_frame_of_odd_length(length: int) -> None:
    err = expect_error(b"\x00" * length, ErrorCode.INVALID_AUDIO_FRAME)
    assert str(length) in err.message


def test_empty_audio_frame() -> None:
    expect_error(b"", ErrorCode.INVALID_AUDIO_FRAME)


@pytest.mark.parametrize("length", [MAX_AUDIO_FRAME_BYTES + 1, MAX_AUDIO_FRAME_BYTES + 2])
def test_audio_frame_too_large(length: int) -> None:
    expect_error(b"\x00" * length, ErrorCode.MESSAGE_TOO_LARGE)


# ---------------------------------------------------------------- client text


@pytest.mark.parametrize("text", ["", "not json", "{", "{'type': 'ping'}", '{"type": "ping"'])
def test_text_not_json(text: str) -> None:
    expect_error(text, ErrorCode.INVALID_JSON)


@pytest.mark.parametrize(
    "text",
    ["[]", '["ping"]', '"ping"', "42", "null", "true", "{}", '{"type": 1}', '{"type": null}',
     '{"kind": "ping"}', '{"type": ["ping"]}'],
)  # fmt: skip
def test_text_not_an_event(text: str) -> None:
    expect_error(text, ErrorCode.INVALID_EVENT)


@pytest.mark.parametrize("kind", ["", "pong", "session.created", "PING", "x" * 1000])
def test_unknown_event_type(kind: str) -> None:
    err = expect_error(json.dumps({"type": kind}), ErrorCode.UNKNOWN_EVENT)
    assert len(err.message) < 200  # the echoed type is truncated


def test_text_too_large() -> None:
    body = json.dumps({"type": "ping", "pad": "x" * MAX_TEXT_MESSAGE_BYTES})
    expect_error(body, ErrorCode.MESSAGE_TOO_LARGE)
    # Not even parsed: invalid JSON of that size is reported as too large.
    expect_error("x" * (MAX_TEXT_MESSAGE_BYTES + 1), ErrorCode.MESSAGE_TOO_LARGE)


def test_text_at_size_limit_is_parsed() -> None:
    body = '{"type": "ping"}'
    body = body + " " * (MAX_TEXT_MESSAGE_BYTES - len(body))
    assert decode_client_message(body) == ev.Ping()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "ping"}, ev.Ping()),
        ({"type": "response.cancel"}, ev.ResponseCancel()),
        ({"type": "conversation.get"}, ev.ConversationGet()),
        ({"type": "ping", "event_id": "abc"}, ev.Ping()),  # extra top-level fields ignored
    ],
)
def test_simple_client_events(body: dict[str, object], expected: ev.ClientEvent) -> None:
    assert decode_client_message(json.dumps(body)) == expected


def test_client_event_type_names() -> None:
    assert ev.SessionUpdate.type == "session.update"
    assert ev.ResponseCancel.type == "response.cancel"
    assert ev.ConversationGet.type == "conversation.get"
    assert ev.Ping.type == "ping"


# ---------------------------------------------------------------- session.update


def session_update(session: object) -> str:
    return json.dumps({"type": "session.update", "session": session})


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        ({}, ev.SessionUpdate()),
        ({"instructions": "Be brief."}, ev.SessionUpdate(instructions="Be brief.")),
        ({"instructions": ""}, ev.SessionUpdate(instructions="")),
        ({"instructions": "x" * MAX_INSTRUCTIONS_CHARS},
         ev.SessionUpdate(instructions="x" * MAX_INSTRUCTIONS_CHARS)),
        ({"end_of_turn_silence_ms": 100}, ev.SessionUpdate(end_of_turn_silence_ms=100)),
        ({"end_of_turn_silence_ms": 5000}, ev.SessionUpdate(end_of_turn_silence_ms=5000)),
        ({"instructions": "Hi", "end_of_turn_silence_ms": 800},
         ev.SessionUpdate(instructions="Hi", end_of_turn_silence_ms=800)),
        ({"instructions": None, "end_of_turn_silence_ms": None}, ev.SessionUpdate()),
        ({"turn_detection": "silence"}, ev.SessionUpdate(turn_detection="silence")),
        ({"turn_detection": "semantic", "eagerness": "low"},
         ev.SessionUpdate(turn_detection="semantic", eagerness="low")),
    ],
)  # fmt: skip
def test_session_update_valid(session: dict[str, object], expected: ev.SessionUpdate) -> None:
    assert decode_client_message(session_update(session)) == expected


def test_session_update_without_session_object() -> None:
    assert decode_client_message('{"type": "session.update"}') == ev.SessionUpdate()


@pytest.mark.parametrize(
    "session",
    [
        None,
        [],
        "instructions",
        42,
        {"voice": "alice"},
        {"instructions": "Hi", "temperature": 0.5},
        {"instructions": 42},
        {"instructions": ["Be", "brief"]},
        {"instructions": "x" * (MAX_INSTRUCTIONS_CHARS + 1)},
        {"end_of_turn_silence_ms": 99},
        {"end_of_turn_silence_ms": 5001},
        {"end_of_turn_silence_ms": -500},
        {"end_of_turn_silence_ms": 500.0},
        {"end_of_turn_silence_ms": "500"},
        {"end_of_turn_silence_ms": True},
        {"end_of_turn_silence_ms": [500]},
        {"turn_detection": "server_vad"},
        {"eagerness": "auto"},
        {"eagerness": 1},
    ],
)
def test_session_update_invalid(session: object) -> None:
    expect_error(session_update(session), ErrorCode.INVALID_EVENT)


def test_session_update_unknown_fields_are_named() -> None:
    err = expect_error(session_update({"b": 1, "a": 2}), ErrorCode.INVALID_EVENT)
    assert "['a', 'b']" in err.message


# ---------------------------------------------------------------- errors


def test_protocol_error_retryable_codes() -> None:
    for code in (ErrorCode.ASR_FAILED, ErrorCode.LLM_FAILED, ErrorCode.TTS_FAILED):
        assert ProtocolError(code, "x").retryable
    assert ProtocolError(ErrorCode.INTERNAL_ERROR, "x").retryable
    assert not ProtocolError(ErrorCode.INVALID_JSON, "x").retryable
    assert ErrorCode.INVALID_AUDIO_FRAME.value == "invalid_audio_frame"


# ---------------------------------------------------------------- server events


def decoded(event: ev.ServerEvent) -> dict[str, object]:
    text = encode_server_event(event)
    body = json.loads(text)
    assert isinstance(body, dict)
    assert next(iter(body)) == "type"  # "type" comes first on the wire
    assert body["type"] == event.type
    return body


def test_encode_session_created_nests_audio_formats() -> None:
    event = ev.SessionCreated(
        protocol=PROTOCOL_VERSION,
        session_id="s-1",
        input_audio=ev.AudioFormat("pcm16", 16_000, 1),
        output_audio=ev.AudioFormat("pcm16", 22_050, 1),
        end_of_turn_silence_ms=500,
        instructions="Be brief.",
        output_video=ev.VideoInfo("jpeg", 25.0, 512, 512, 10.0),
    )
    assert decoded(event) == {
        "type": "session.created",
        "protocol": "dandelion.v1",
        "session_id": "s-1",
        "input_audio": {"encoding": "pcm16", "sample_rate": 16_000, "channels": 1},
        "output_audio": {"encoding": "pcm16", "sample_rate": 22_050, "channels": 1},
        "end_of_turn_silence_ms": 500,
        "instructions": "Be brief.",
        "output_video": {
            "codec": "jpeg",
            "fps": 25.0,
            "width": 512,
            "height": 512,
            "idle_fps": 10.0,
        },
        "turn_detection": "semantic",
        "eagerness": "medium",
        "resume_token": None,
        "resumed": False,
    }


def test_encode_conversation_history_items() -> None:
    event = ev.ConversationHistory(
        items=(ev.ConversationItem("user", "Hi"), ev.ConversationItem("assistant", "Hello!"))
    )
    assert decoded(event) == {
        "type": "conversation.history",
        "items": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ],
    }
    assert decoded(ev.ConversationHistory(items=())) == {
        "type": "conversation.history",
        "items": [],
    }


def test_encode_is_compact_and_keeps_unicode() -> None:
    text = encode_server_event(ev.TranscriptFinal(turn_id=3, text="Grüße — 你好"))
    assert text == '{"type":"transcript.final","turn_id":3,"text":"Grüße — 你好"}'


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (ev.Pong(), {"type": "pong"}),
        (ev.SessionUpdated(end_of_turn_silence_ms=800, instructions="x", video="off"),
         {"type": "session.updated", "end_of_turn_silence_ms": 800, "instructions": "x",
          "video": "off", "turn_detection": "semantic", "eagerness": "medium"}),
        (ev.SpeechStarted(audio_start_ms=320),
         {"type": "input_audio.speech_started", "audio_start_ms": 320}),
        (ev.SpeechStopped(audio_start_ms=320, audio_end_ms=960, turn_id=1),
         {"type": "input_audio.speech_stopped", "audio_start_ms": 320, "audio_end_ms": 960,
          "turn_id": 1}),
        (ev.TranscriptPartial(text="hel"), {"type": "transcript.partial", "text": "hel"}),
        (ev.ResponseStarted(turn_id=2), {"type": "response.started", "turn_id": 2}),
        (ev.ResponseTextDelta(turn_id=2, delta="Hi"),
         {"type": "response.text.delta", "turn_id": 2, "delta": "Hi"}),
        (ev.ResponseTextDone(turn_id=2, text="Hi."),
         {"type": "response.text.done", "turn_id": 2, "text": "Hi."}),
        (ev.ResponseAudioDone(turn_id=2, duration_ms=1500),
         {"type": "response.audio.done", "turn_id": 2, "duration_ms": 1500}),
        (ev.ResponseInterrupted(turn_id=2, played_ms=700, heard_text="Hi"),
         {"type": "response.interrupted", "turn_id": 2, "played_ms": 700, "heard_text": "Hi"}),
        (ev.ResponseDone(turn_id=2, status="completed", text="Hi.", heard_text="Hi."),
         {"type": "response.done", "turn_id": 2, "status": "completed", "text": "Hi.",
          "heard_text": "Hi.", "timings": {}}),
        (ev.ResponseDone(turn_id=2, status="failed", text="", heard_text="",
                         timings={"asr_ms": 12.5, "total_ms": 80.0}),
         {"type": "response.done", "turn_id": 2, "status": "failed", "text": "",
          "heard_text": "", "timings": {"asr_ms": 12.5, "total_ms": 80.0}}),
        (ev.ErrorEvent(code=ErrorCode.INVALID_JSON, message="bad", retryable=False),
         {"type": "error", "code": "invalid_json", "message": "bad", "retryable": False,
          "turn_id": None}),
        (ev.ErrorEvent(code="asr_failed", message="boom", retryable=True, turn_id=4),
         {"type": "error", "code": "asr_failed", "message": "boom", "retryable": True,
          "turn_id": 4}),
    ],
)  # fmt: skip
def test_encode_server_events(event: ev.ServerEvent, expected: dict[str, object]) -> None:
    assert decoded(event) == expected


def test_to_dict_does_not_share_mutable_state() -> None:
    timings = {"asr_ms": 1.0}
    event = ev.ResponseDone(turn_id=1, status="completed", text="", heard_text="", timings=timings)
    body = event.to_dict()
    assert body["timings"] == timings
    assert body["timings"] is not timings


def test_server_event_types_are_unique() -> None:
    classes = [
        c for c in vars(ev).values() if isinstance(c, type) and issubclass(c, ev.ServerEvent)
    ]
    types = [c.type for c in classes if c is not ev.ServerEvent]
    assert len(types) >= 15
    assert all(types)
    assert len(types) == len(set(types))
