"""What a session needs from the model stages, whatever runs them (Serve handles, or in-process)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from dandelion.backends.asr.base import Transcript
from dandelion.backends.tts.base import SpeechChunk


@dataclass(frozen=True, slots=True)
class VideoFormat:
    fps: float
    width: int
    height: int
    idle_fps: float = 0.0  # frames per second of the face at rest between replies (0: none)


@dataclass(frozen=True, slots=True)
class VideoFrame:
    pts_us: int  # on the reply's audio clock (idle frames: on the session's face clock)
    data: bytes  # one JPEG image or one H.264 access unit
    seconds: float = 0.0  # what rendering and encoding it cost


class Stages(Protocol):
    output_sample_rate: int
    video: VideoFormat | None  # None: no avatar in this deployment

    async def transcribe(self, pcm16: bytes) -> Transcript:
        """PCM16LE mono 16 kHz utterance in; its text, with Whisper's confidence and language
        for the speech gate (speech_gate.judge)."""
        ...

    def chat(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        """Stream the reply's text deltas; closing the iterator aborts generation."""
        ...

    async def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        """How likely the user's turn is over, by its words: a probability, 0..1.

        `messages` is the prompt `chat` would get (system, history, and last the user's turn
        so far, as transcribed). The LLM's probability that the message ends after these words
        (their final punctuation ignored: Whisper ends every segment with a period). None when
        the LLM backend cannot score (vLLM, an OpenAI-compatible server): fall back to silence.
        On llama.cpp it reads the prompt `chat` then reuses, so a reply started right after it
        reads only the last few tokens; it waits for a reply being generated on the same
        replica. Measured thresholds: docs/evaluation.md, "End of turn: signals measured".
        """
        ...

    def speak(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        """Stream PCM16LE mono audio at `output_sample_rate` for one chunk of text."""
        ...

    def animate(
        self, chunk: SpeechChunk, start_s: float, codec: str, face_s: float = 0.0
    ) -> AsyncGenerator[list[VideoFrame], None]:
        """Avatar video for `chunk`, whose audio starts `start_s` into the reply.

        `face_s`: the session's face clock when the reply started (blinks, head motion).
        """
        ...

    async def idle(self, start_s: float, count: int, codec: str) -> list[VideoFrame]:
        """`count` frames of the face at rest from `start_s` on the face clock, at idle fps."""
        ...
