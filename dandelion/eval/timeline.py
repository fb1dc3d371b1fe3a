"""What one scenario's run recorded, and the server's turns read back from it. Pure data.

Two clocks meet here. Stream time (ms) is the position in the audio the client sent, the
server's own clock: `input_audio.speech_stopped` reports turns on it, and the runner knows
exactly where each utterance's speech lies on it. Client time (s since the session opened,
`t`) is when things happened at the client: when each speech sample was captured (it is sent
in real time), when each event arrived, when the virtual loudspeaker played or stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of sound in an utterance: on the stream (ms) and when it was captured (s)."""

    start_ms: int
    end_ms: int
    start_t: float
    end_t: float


@dataclass(frozen=True, slots=True)
class UtteranceRecord:
    """One scenario turn as the microphone sent it."""

    index: int
    """Its position in the scenario's `turns`."""
    spans: tuple[Span, ...]
    """Where it sounds (speech, or the non-speech sound), in order; empty if all silent."""
    audio_start_ms: int
    audio_end_ms: int

    @property
    def sound_start_ms(self) -> int:
        return self.spans[0].start_ms if self.spans else self.audio_start_ms

    @property
    def sound_end_ms(self) -> int:
        return self.spans[-1].end_ms if self.spans else self.audio_end_ms


@dataclass(frozen=True, slots=True)
class Playback:
    """A reply's audio at the client's (virtual) loudspeaker."""

    start_t: float
    """When its first sample played (its first frame's arrival)."""
    end_t: float
    """When the last sample played: when playback was stopped, or, when it was stopped while
    paused (`response.audio.paused`, then `response.interrupted`), when it paused."""
    cut: bool
    """Stopped before all the audio received had played (`response.interrupted`, or a new
    turn's `speech_stopped` or audio)."""
    played_s: float
    pauses: int = 0
    """`response.audio.paused` that held it (each followed by a resume, or by the stop)."""
    paused_s: float = 0.0
    """Time it was held silent, over all its pauses: a resumed reply ends that much later."""


@dataclass
class Timeline:
    """Everything a scenario's run produced, for scoring (JSON-serializable via `to_dict`)."""

    utterances: list[UtteranceRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Server JSON events with `t`, the client time they arrived. Audio frames appear as
    `{"type": "response.audio", "turn_id", "samples", "t"}`."""
    playback: dict[int, Playback] = field(default_factory=dict)
    heard: dict[int, str] = field(default_factory=dict)
    """Each reply's audio, as it played, transcribed again by the bench's own ASR."""
    history: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the run met that scores against the server (a reply that never ended in time)."""
    aborted: str | None = None
    """Why the run stopped before the scenario's end (no server, a closed connection): such a
    scenario is not scored."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "utterances": [asdict(u) for u in self.utterances],
            "events": [e for e in self.events if e["type"] != "response.audio"],
            "playback": {str(k): asdict(v) for k, v in self.playback.items()},
            "heard": {str(k): v for k, v in self.heard.items()},
            "history": self.history,
            "notes": self.notes,
            "aborted": self.aborted,
        }


@dataclass
class ServerTurn:
    """One turn the server took (an `input_audio.speech_stopped`) and what came of it."""

    turn_id: int
    audio_start_ms: int
    audio_end_ms: int
    stopped_t: float
    transcript: str = ""
    started: bool = False
    """`response.started` came: the server answered it."""
    first_audio_t: float | None = None
    text: str = ""
    status: str | None = None
    """`response.done` status, None until it comes."""
    done_t: float | None = None
    interrupted_t: float | None = None
    audio_s: float = 0.0
    """Seconds of reply audio received."""
    timings: dict[str, float] = field(default_factory=dict)
    """The server's own account of where the time went (`response.done` timings, ms)."""

    @property
    def answered(self) -> bool:
        return self.started or self.first_audio_t is not None


def server_turns(events: list[dict[str, Any]]) -> list[ServerTurn]:
    """The server's turns in the order they were taken, from the events of one session."""
    turns: dict[int, ServerTurn] = {}
    output_rate = 22_050
    for event in events:
        kind = event["type"]
        if kind == "session.created":
            output_rate = int(event["output_audio"]["sample_rate"])
        if kind == "input_audio.speech_stopped":
            turns[event["turn_id"]] = ServerTurn(
                event["turn_id"], event["audio_start_ms"], event["audio_end_ms"], event["t"]
            )
            continue
        turn = turns.get(event.get("turn_id", -1))
        if turn is None:
            continue
        if kind == "transcript.final":
            turn.transcript = event["text"]
        elif kind == "response.started":
            turn.started = True
        elif kind == "response.audio":
            if turn.first_audio_t is None:
                turn.first_audio_t = event["t"]
            turn.audio_s += event["samples"] / output_rate
        elif kind == "response.interrupted":
            turn.interrupted_t = event["t"]
        elif kind == "response.done":
            turn.status, turn.done_t, turn.text = event["status"], event["t"], event["text"]
            turn.timings = dict(event.get("timings") or {})
    return list(turns.values())
