"""The state of one reply: its text, its audio, its timings, and whether it may be heard yet."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from dandelion.conversation import SpokenChunk
from dandelion.playback import PlaybackClock


@dataclass
class Reply:
    """A reply to one user turn.

    A reply may start speculatively, during a short pause: until `confirmed`, everything it
    would send waits in `outbox`, and the conversation is left untouched.
    """

    turn_id: int
    segment: int  # the speech segment it answers
    audio: bytes  # the user's utterance
    speech_end: float  # monotonic time when the user's speech ended (estimated)
    clock: PlaybackClock
    confirmed: bool = False
    task: asyncio.Task[None] | None = None
    transcript: str | None = None
    context: str | None = None  # the date-and-time line its prompt opened the user turn with
    text: str = ""
    tokens: int = 0  # text deltas from the LLM (one per token with llama.cpp)
    chunks: list[SpokenChunk] = field(default_factory=list)
    samples_made: int = 0  # audio produced (sent or waiting in the outbox)
    outbox: list[tuple[str | bytes, int]] = field(default_factory=list)  # (message, samples)
    user_added: bool = False
    completed: bool = False
    assistant_added: bool = False
    ended: bool = False
    done_sent: bool = False  # response.done went out (or waits in the outbox)
    timings: dict[str, float] = field(default_factory=dict)
    # Set once the avatar's first frame is out (or the avatar gave up): the voice waits for it.
    face_ready: asyncio.Event = field(default_factory=asyncio.Event)

    def mark(self, name: str, now: float) -> None:
        """Record `name` once, in ms after the end of the user's speech."""
        self.timings.setdefault(name, round((now - self.speech_end) * 1000, 1))

    def running(self) -> bool:
        return self.task is not None and not self.task.done()
