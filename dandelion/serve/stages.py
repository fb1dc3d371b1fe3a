"""`Stages` over Ray Serve deployment handles: one call per utterance, one stream per reply."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from dandelion.backends.asr.base import Transcript
from dandelion.backends.tts.base import SpeechChunk
from dandelion.stages import VideoFormat, VideoFrame


class ServeStages:
    def __init__(
        self,
        asr: Any,
        llm: Any,
        tts: Any,
        output_sample_rate: int,
        avatar: Any = None,
        video: VideoFormat | None = None,
    ) -> None:
        self._asr = asr
        self._llm = llm
        self._tts = tts
        self._avatar = avatar
        self.output_sample_rate = output_sample_rate
        self.video = video

    async def transcribe(self, pcm16: bytes) -> Transcript:
        result: dict[str, Any] = await self._asr.transcribe.remote(pcm16)
        return Transcript.from_dict(result)

    async def chat(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        stream = self._llm.options(stream=True).stream.remote(messages)
        try:
            async for delta in stream:
                yield delta
        finally:
            # Reaches the replica as a cancellation: the LLM thread stops within a token.
            stream.cancel()

    async def end_of_turn_probability(self, messages: list[dict[str, str]]) -> float | None:
        probability: float | None = await self._llm.end_of_turn_probability.remote(messages)
        return probability

    async def speak(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        stream = self._tts.options(stream=True).synthesize.remote(text)
        try:
            async for chunk in stream:
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
            async for batch in stream:
                yield [
                    VideoFrame(frame["pts_us"], frame["data"], frame.get("seconds", 0.0))
                    for frame in batch
                ]
        finally:
            stream.cancel()

    async def idle(self, start_s: float, count: int, codec: str) -> list[VideoFrame]:
        if self._avatar is None:
            return []
        frames: list[dict[str, Any]] = await self._avatar.idle.remote(start_s, count, codec)
        return [VideoFrame(f["pts_us"], f["data"], f.get("seconds", 0.0)) for f in frames]
