"""A `Session` driven in milliseconds: scripted VAD, scripted stages, a fake clock.

Audio is fed in 32 ms frames; the fake VAD calls a frame speech when its samples are loud, so a
test writes speech and silence as `speak(ms)` and `silence(ms)`. The clock moves with the audio
(real time for the client), and the stages answer at once unless a test makes them wait, so each
step lets every pending task run before the next frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dandelion.backends.asr.base import Transcript
from dandelion.backends.tts.base import SpeechChunk
from dandelion.config import AppSettings
from dandelion.protocol import MediaFrame
from dandelion.protocol import events as ev
from dandelion.reply import Outgoing
from dandelion.session import Session
from dandelion.session_state import SessionState
from dandelion.stages import VideoFormat, VideoFrame

FRAME = 512  # samples per VAD frame at 16 kHz (32 ms)
FRAME_MS = 32
OUTPUT_RATE = 16_000
LOUD = 8_000  # PCM16 level of a "speech" frame


class LoudnessStream:
    def probability(self, frame: npt.NDArray[np.float32]) -> float:
        return 0.95 if float(np.abs(frame).mean()) > 0.1 else 0.02


class LoudnessVAD:
    """Speech where the audio is loud: the test's script is the VAD's output."""

    sample_rate = 16_000
    frame_samples = FRAME

    def new_stream(self) -> LoudnessStream:
        return LoudnessStream()


@dataclass
class ScriptedStages:
    """Transcripts, LLM deltas and TTS audio from lists; `gate` makes a stage wait."""

    transcripts: list[str | Transcript] = field(default_factory=lambda: ["What is the time?"])
    reply: list[str] = field(default_factory=lambda: ["It is ", "noon. ", "Enjoy ", "lunch."])
    speech_s_per_chunk: float = 1.0
    end_of_turn: list[float | None] = field(default_factory=lambda: [None])  # LLM scores, in turn
    fail: set[str] = field(default_factory=set)  # stages that raise: transcribe, chat, speak, score
    asr_gate: asyncio.Event | None = None  # transcribe waits for it when set
    output_sample_rate: int = OUTPUT_RATE
    video: VideoFormat | None = None
    heard_audio: list[int] = field(default_factory=list)  # bytes of audio per transcribe call
    prompts: list[list[dict[str, str]]] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)
    scored: list[str] = field(default_factory=list)  # the user message of each scoring call

    async def transcribe(self, pcm16: bytes) -> Transcript:
        self.heard_audio.append(len(pcm16))
        if self.asr_gate is not None:
            await self.asr_gate.wait()
        if "transcribe" in self.fail:
            raise RuntimeError("asr down")
        text = self.transcripts[min(len(self.heard_audio), len(self.transcripts)) - 1]
        return text if isinstance(text, Transcript) else Transcript(text)

    async def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        self.scored.append(messages[-1]["content"])
        if "score" in self.fail:
            raise RuntimeError("scoring down")
        return self.end_of_turn[min(len(self.scored), len(self.end_of_turn)) - 1]

    async def chat(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        self.prompts.append(messages)
        if "chat" in self.fail:
            raise RuntimeError("llm down")
        for delta in self.reply:
            yield delta

    async def speak(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        if "speak" in self.fail:
            raise RuntimeError("tts down")
        self.spoken.append(text)
        # Noise shaped like syllables (4 Hz): unlike anything else, so its echo is recognisable.
        n = int(self.speech_s_per_chunk * OUTPUT_RATE)
        rng = np.random.default_rng(len(self.spoken))
        envelope = 0.5 + 0.5 * np.abs(np.sin(np.arange(n) * 2 * np.pi * 4 / OUTPUT_RATE))
        wave = rng.normal(0.0, 0.25, n) * envelope
        yield SpeechChunk((np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes())

    def animate(
        self, chunk: SpeechChunk, start_s: float, codec: str, face_s: float = 0.0
    ) -> AsyncGenerator[list[VideoFrame], None]:
        raise AssertionError("no avatar in these tests")

    async def idle(self, start_s: float, count: int, codec: str) -> list[VideoFrame]:
        raise AssertionError("no avatar in these tests")


class Harness:
    """One session, its clock and everything it sent, stamped with the input audio time (ms)."""

    def __init__(
        self,
        stages: ScriptedStages | None = None,
        restored: SessionState | None = None,
        **settings: object,
    ) -> None:
        self.stages = stages or ScriptedStages()
        self.now_s = 100.0
        self.audio_ms = 0
        self.sent: list[tuple[int, Outgoing]] = []
        self.session = Session(
            "test",
            AppSettings.model_validate(settings),
            LoudnessVAD(),
            self.stages,
            self._send,
            clock=self.clock,
            sleep=self.sleep,
            restored=restored,
            resume_token="test.secret",
        )
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        """Sleep on the fake clock: wakes when the audio fed has moved it past the target."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now_s + seconds, future))
        await future

    def _wake_sleepers(self) -> None:
        due = [(t, f) for t, f in self._sleepers if t <= self.now_s]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self.now_s]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    async def _send(self, item: Outgoing) -> None:
        self.sent.append((self.audio_ms, item))

    async def start(self) -> None:
        await self.session.start()

    async def settle(self) -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def frames(self, ms: int, level: int) -> None:
        for _ in range(ms // FRAME_MS):
            await self._feed(np.full(FRAME, level, dtype="<i2").tobytes())

    async def _feed(self, pcm: bytes) -> None:
        self.audio_ms += FRAME_MS  # what it sends now, it sends at this frame's end
        self.now_s += FRAME_MS / 1000
        self._wake_sleepers()
        await self.session.receive(pcm)
        await self.settle()

    async def speak(self, ms: int) -> None:
        await self.frames(ms, LOUD)

    async def echo(self, ms: int, gain: float, delay_ms: int = 80) -> None:
        """The reply being played comes back into the microphone, `delay_ms` late."""
        for _ in range(ms // FRAME_MS):
            reply = self.session._reply  # where its playback stands
            assert reply is not None
            audio = b"".join(f.payload for f in self.audio_frames(reply.turn_id))
            wave = np.frombuffer(audio, dtype="<i2").astype(np.float32)
            end = reply.clock.played_samples(self.now_s) - delay_ms * OUTPUT_RATE // 1000
            frame = np.zeros(FRAME, dtype=np.float32)
            piece = wave[max(0, end - FRAME) : max(0, end)]
            frame[FRAME - len(piece) :] = piece * gain
            await self._feed(frame.astype("<i2").tobytes())

    async def silence(self, ms: int) -> None:
        await self.frames(ms, 0)

    async def close(self) -> None:
        await self.session.close()

    # ------------------------------------------------------------------ what was sent

    def events(self, kind: type[ev.ServerEvent] | None = None) -> list[ev.ServerEvent]:
        found = [item for _, item in self.sent if isinstance(item, ev.ServerEvent)]
        return [e for e in found if kind is None or isinstance(e, kind)]

    def types(self) -> list[str]:
        return [item.type for _, item in self.sent if isinstance(item, ev.ServerEvent)]

    def audio_frames(self, turn_id: int | None = None) -> list[MediaFrame]:
        frames = [item for _, item in self.sent if isinstance(item, MediaFrame)]
        return [f for f in frames if turn_id is None or f.turn_id == turn_id]

    def first_sent_ms(self, match: Callable[[Outgoing], bool]) -> int | None:
        return next((ms for ms, item in self.sent if match(item)), None)
