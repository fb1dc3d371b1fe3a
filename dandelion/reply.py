"""One reply's life as an explicit state machine, and what it holds. Pure: no asyncio, no Ray.

    SPECULATIVE ──confirm──▶ CONFIRMED ──pipeline finished──▶ DONE
         │                      │                               │
       drop                  interrupt                      interrupt (still playing)
         ▼                      ▼                               ▼
      DROPPED              INTERRUPTED ◀────────────────────────┘

A reply starts SPECULATIVE at a short pause: it is transcribed, generated and synthesized, but
everything it would send waits in `outbox` and the conversation is left untouched. When the end
of the turn is confirmed it becomes CONFIRMED (the outbox goes out, the turn is written into the
conversation); if the user goes on speaking first it is DROPPED, never heard. A confirmed reply is
DONE once its pipeline has finished (`outcome` says how), though its audio may still be playing
at the client (`clock`); the user can cut it while it is made or played (INTERRUPTED).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from dandelion.conversation import SpokenChunk
from dandelion.echo import EchoReference
from dandelion.end_of_turn import Completeness
from dandelion.playback import PlaybackClock
from dandelion.protocol import MediaFrame
from dandelion.protocol.events import ServerEvent


class ReplyState(Enum):
    SPECULATIVE = "speculative"
    CONFIRMED = "confirmed"
    DONE = "done"
    INTERRUPTED = "interrupted"
    DROPPED = "dropped"


_ALLOWED = {
    ReplyState.SPECULATIVE: {ReplyState.CONFIRMED, ReplyState.DROPPED},
    ReplyState.CONFIRMED: {ReplyState.DONE, ReplyState.INTERRUPTED},
    ReplyState.DONE: {ReplyState.INTERRUPTED},
    ReplyState.INTERRUPTED: set(),
    ReplyState.DROPPED: set(),
}


class IllegalTransition(RuntimeError):
    """A reply was asked to move to a state it cannot reach from where it is (a bug)."""


Outgoing = ServerEvent | MediaFrame


@dataclass
class Reply:
    """A reply to one user turn, from its speculative start to its end.

    `outcome` is the pipeline's ending (completed | failed | empty), None while it runs; it is
    known before DONE when the pipeline finishes during the hold.
    """

    turn_id: int
    segment: int  # the speech segment it answers
    audio: bytes  # the user's utterance, PCM16LE mono 16 kHz
    speech_end: float  # monotonic time when the user's speech ended (estimated), s
    clock: PlaybackClock
    start_ms: int = 0  # the user's speech, in the session's input audio (ms)
    end_ms: int = 0
    prefix: str = ""  # the text of the turn's earlier pieces (a long turn); `audio` is the rest
    video_codec: str = "off"  # the avatar's codec for this reply ("off": no video)
    state: ReplyState = ReplyState.SPECULATIVE
    outcome: str | None = None
    transcript: str | None = None
    context: str | None = None  # the date-and-time line its prompt opened the user turn with
    messages: list[dict[str, str]] | None = None  # the LLM prompt, set once transcribed
    completeness: Completeness = Completeness.UNKNOWN  # of its transcript, as a user turn
    score_end_of_turn: bool = False  # ask the LLM whether the turn is over (semantic detection)
    echo: EchoReference | None = None  # its audio as sent, to recognise it in the microphone
    text: str = ""
    tokens: int = 0  # text deltas from the LLM (one per token with llama.cpp)
    chunks: list[SpokenChunk] = field(default_factory=list)
    samples_made: int = 0  # audio produced (sent or waiting in the outbox)
    outbox: list[tuple[Outgoing, int]] = field(default_factory=list)  # (item, audio samples)
    timings: dict[str, float] = field(default_factory=dict)

    def advance(self, state: ReplyState) -> None:
        if state not in _ALLOWED[self.state]:
            raise IllegalTransition(f"turn {self.turn_id}: {self.state.value} -> {state.value}")
        self.state = state

    @property
    def confirmed(self) -> bool:
        """The user may hear it: its messages go out and the conversation records it."""
        return self.state in (ReplyState.CONFIRMED, ReplyState.DONE)

    @property
    def over(self) -> bool:
        """Cut or dropped: nothing more of it is sent."""
        return self.state in (ReplyState.INTERRUPTED, ReplyState.DROPPED)

    def mark(self, name: str, now: float) -> None:
        """Record `name` once, in ms after the end of the user's speech."""
        self.timings.setdefault(name, round((now - self.speech_end) * 1000, 1))
