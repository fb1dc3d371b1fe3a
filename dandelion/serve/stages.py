"""`Stages` over Ray Serve deployment handles: one call per utterance, one stream per reply.

Every call, and every item of a stream, must come within `timeout_s`: Serve's router waits
without limit for a replica when none is up, and a turn must end even when a deployment does not
come back. A time-out raises `StageTimeout`, which the reply pipeline treats as any failed call
of that stage (a retryable `asr_failed`, `llm_failed`, `tts_failed`; the avatar: no face).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, TypeVar

from dandelion.backends.asr.base import Transcript
from dandelion.backends.tts.base import SpeechChunk
from dandelion.stages import VideoFormat, VideoFrame

T = TypeVar("T")


class StageTimeout(TimeoutError):
    """A model deployment gave no answer (or no next item) in time. Its text is for the log."""

    def __init__(self, stage: str, timeout_s: float) -> None:
        super().__init__(f"{stage}: no answer from the deployment within {timeout_s:g} s")


async def _within(stage: str, timeout_s: float, awaitable: Awaitable[T]) -> T:
    timeout = asyncio.timeout(timeout_s)
    try:
        async with timeout:
            return await awaitable
    except TimeoutError:
        if not timeout.expired():  # the stage's own TimeoutError: a failure like any other
            raise
        raise StageTimeout(stage, timeout_s) from None


class _Bounded:
    """A Serve response stream whose every next item must come within `timeout_s`.

    An iterator, not an async generator: closing the caller's generator then leaves nothing
    suspended, and the caller's `finally` cancels the stream on the replica at once.
    """

    def __init__(self, stage: str, timeout_s: float, stream: Any) -> None:
        self._stage = stage
        self._timeout_s = timeout_s
        self._stream = stream

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await _within(self._stage, self._timeout_s, self._stream.__anext__())


class ServeStages:
    def __init__(
        self,
        asr: Any,
        llm: Any,
        tts: Any,
        output_sample_rate: int,
        avatar: Any = None,
        video: VideoFormat | None = None,
        *,
        timeout_s: float,
    ) -> None:
        """`timeout_s`: the longest wait for a call, or for a stream's next item
        (AppSettings.stage_timeout_s)."""
        self._asr = asr
        self._llm = llm
        self._tts = tts
        self._avatar = avatar
        self.output_sample_rate = output_sample_rate
        self.video = video
        self._timeout_s = timeout_s

    async def _call(self, stage: str, response: Any) -> Any:
        """One call's result; on a time-out the request is cancelled too, so a replica that
        comes back does not run it for nobody."""
        try:
            return await _within(stage, self._timeout_s, response)
        except StageTimeout:
            response.cancel()
            raise

    async def transcribe(self, pcm16: bytes) -> Transcript:
        result: dict[str, Any] = await self._call("ASR", self._asr.transcribe.remote(pcm16))
        return Transcript.from_dict(result)

    async def chat(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        stream = self._llm.options(stream=True).stream.remote(messages)
        try:
            async for delta in _Bounded("LLM", self._timeout_s, stream):
                yield delta
        finally:
            # Reaches the replica as a cancellation: the LLM thread stops within a token.
            stream.cancel()

    async def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        response = self._llm.end_of_turn_probability.remote(messages)
        probability: float | None = await self._call("LLM", response)
        return probability

    async def speak(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        stream = self._tts.options(stream=True).synthesize.remote(text)
        try:
            async for chunk in _Bounded("TTS", self._timeout_s, stream):
                yield chunk
        finally:
            stream.cancel()

    async def animate(
        self, chunk: SpeechChunk, start_s: float, codec: str, face_s: float = 0.0
    ) -> AsyncGenerator[list[VideoFrame], None]:
        if self._avatar is None:
            return
        alignments = list(chunk.alignments) if chunk.alignments else None
        stream = self._avatar.options(stream=True).render.remote(
            chunk.pcm, self.output_sample_rate, alignments, start_s, codec, face_s
        )
        try:
            async for batch in _Bounded("Avatar", self._timeout_s, stream):
                yield [
                    VideoFrame(frame["pts_us"], frame["data"], frame.get("seconds", 0.0))
                    for frame in batch
                ]
        finally:
            stream.cancel()

    async def idle(self, start_s: float, count: int, codec: str) -> list[VideoFrame]:
        if self._avatar is None:
            return []
        response = self._avatar.idle.remote(start_s, count, codec)
        frames: list[dict[str, Any]] = await self._call("Avatar", response)
        return [VideoFrame(f["pts_us"], f["data"], f.get("seconds", 0.0)) for f in frames]
