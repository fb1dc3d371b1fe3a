"""The event vocabulary of a session: what the client may send, what the server sends back.

Every event is a frozen dataclass whose `type` is the wire name. Server events that belong to a
reply carry its `turn_id`, so any stage (or client) can drop stale ones after an interruption.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

# ---------------------------------------------------------------- client -> server


@dataclass(frozen=True, slots=True)
class AudioIn:
    """A binary frame of PCM16LE mono audio at INPUT_SAMPLE_RATE."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    type: ClassVar[str] = "session.update"
    instructions: str | None = None
    end_of_turn_silence_ms: int | None = None  # also switches turn_detection to "silence"
    video: str | None = None  # "off", "jpeg" or "h264"
    turn_detection: str | None = None  # "semantic" or "silence"
    eagerness: str | None = None  # "low", "medium" or "high" (semantic detection)


@dataclass(frozen=True, slots=True)
class ResponseCancel:
    type: ClassVar[str] = "response.cancel"


@dataclass(frozen=True, slots=True)
class ConversationGet:
    type: ClassVar[str] = "conversation.get"


@dataclass(frozen=True, slots=True)
class Ping:
    type: ClassVar[str] = "ping"


ClientEvent = AudioIn | SessionUpdate | ResponseCancel | ConversationGet | Ping

# ---------------------------------------------------------------- server -> client


@dataclass(frozen=True, slots=True)
class ServerEvent:
    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"type": self.type, **_plain(body)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class AudioFormat:
    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class VideoInfo:
    codec: str  # "off" (no video frames), "jpeg" or "h264"
    fps: float
    width: int
    height: int
    idle_fps: float = 0.0  # idle frames (turn 0) between replies, per second; 0: none


@dataclass(frozen=True, slots=True)
class SessionCreated(ServerEvent):
    type: ClassVar[str] = "session.created"
    protocol: str
    session_id: str
    input_audio: AudioFormat
    output_audio: AudioFormat
    end_of_turn_silence_ms: int
    instructions: str
    output_video: VideoInfo
    turn_detection: str = "semantic"
    eagerness: str = "medium"
    # Reconnect with this to go on with the same conversation (None: the server keeps none).
    resume_token: str | None = None
    resumed: bool = False  # this session goes on with an earlier one's conversation


@dataclass(frozen=True, slots=True)
class SessionUpdated(ServerEvent):
    type: ClassVar[str] = "session.updated"
    end_of_turn_silence_ms: int
    instructions: str
    video: str
    turn_detection: str = "semantic"
    eagerness: str = "medium"


@dataclass(frozen=True, slots=True)
class SpeechStarted(ServerEvent):
    type: ClassVar[str] = "input_audio.speech_started"
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped(ServerEvent):
    type: ClassVar[str] = "input_audio.speech_stopped"
    audio_start_ms: int
    audio_end_ms: int
    turn_id: int


@dataclass(frozen=True, slots=True)
class InputIgnored(ServerEvent):
    """Speech the server heard and chose not to answer, and why: a backchannel or the reply's
    own echo over a reply, no words (a noise), or not real speech (speech_gate.py)."""

    type: ClassVar[str] = "input_audio.ignored"
    audio_start_ms: int
    audio_end_ms: int
    reason: str
    text: str = ""
    turn_id: int | None = None  # the turn it ended, if it was one (not speech over a reply)


@dataclass(frozen=True, slots=True)
class TranscriptPartial(ServerEvent):
    type: ClassVar[str] = "transcript.partial"
    text: str


@dataclass(frozen=True, slots=True)
class TranscriptFinal(ServerEvent):
    type: ClassVar[str] = "transcript.final"
    turn_id: int
    text: str


@dataclass(frozen=True, slots=True)
class ResponseStarted(ServerEvent):
    type: ClassVar[str] = "response.started"
    turn_id: int


@dataclass(frozen=True, slots=True)
class ResponseTextDelta(ServerEvent):
    type: ClassVar[str] = "response.text.delta"
    turn_id: int
    delta: str


@dataclass(frozen=True, slots=True)
class ResponseTextDone(ServerEvent):
    type: ClassVar[str] = "response.text.done"
    turn_id: int
    text: str


@dataclass(frozen=True, slots=True)
class ResponseAudioDone(ServerEvent):
    type: ClassVar[str] = "response.audio.done"
    turn_id: int
    duration_ms: int


@dataclass(frozen=True, slots=True)
class ResponseInterrupted(ServerEvent):
    """Stop playback of this turn now and drop what is buffered."""

    type: ClassVar[str] = "response.interrupted"
    turn_id: int
    played_ms: int
    heard_text: str


@dataclass(frozen=True, slots=True)
class ResponseAudioPaused(ServerEvent):
    """Speech over the reply: stop playing this turn's audio now, keep what is buffered."""

    type: ClassVar[str] = "response.audio.paused"
    turn_id: int
    played_ms: int


@dataclass(frozen=True, slots=True)
class ResponseAudioResumed(ServerEvent):
    """It was a backchannel, the reply's echo or a noise: play on from where it paused."""

    type: ClassVar[str] = "response.audio.resumed"
    turn_id: int


@dataclass(frozen=True, slots=True)
class ResponseAudioPlayed(ServerEvent):
    """The client has (by the server's estimate) played all of this turn's audio: the floor is
    the user's; speaking now interrupts nothing."""

    type: ClassVar[str] = "response.audio.played"
    turn_id: int


@dataclass(frozen=True, slots=True)
class ResponseDone(ServerEvent):
    type: ClassVar[str] = "response.done"
    turn_id: int
    status: str  # completed | interrupted | cancelled | failed | empty | ignored
    text: str
    heard_text: str
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConversationItem:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ConversationHistory(ServerEvent):
    type: ClassVar[str] = "conversation.history"
    items: tuple[ConversationItem, ...]


@dataclass(frozen=True, slots=True)
class Pong(ServerEvent):
    type: ClassVar[str] = "pong"


@dataclass(frozen=True, slots=True)
class ErrorEvent(ServerEvent):
    """An error, as the session makes it and as the client gets it.

    The gateway stamps every error on its way out with an `error_id` (the id its full text is
    logged under) and a public message (protocol.errors.public_message); from then on the wire
    form carries `error_id` and `retry_after_s` too. Before that (error_id None) both are left
    out of `to_dict`."""

    type: ClassVar[str] = "error"
    code: str
    message: str
    retryable: bool
    turn_id: int | None = None
    error_id: str | None = None  # 32 hex characters, quoted in the server's log
    retry_after_s: float | None = None  # wait this long before trying again (server_busy...)

    def to_dict(self) -> dict[str, Any]:
        body = ServerEvent.to_dict(self)
        if self.error_id is None:
            del body["error_id"], body["retry_after_s"]
        return body
