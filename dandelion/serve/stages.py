"""`Stages` over Ray Serve deployment handles: one call per utterance, one stream per reply."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any


class ServeStages:
    def __init__(self, asr: Any, llm: Any, tts: Any, output_sample_rate: int) -> None:
        self._asr = asr
        self._llm = llm
        self._tts = tts
        self.output_sample_rate = output_sample_rate

    async def transcribe(self, pcm16: bytes) -> str:
        result: dict[str, Any] = await self._asr.transcribe.remote(pcm16)
        return str(result["text"])

    async def chat(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        stream = self._llm.options(stream=True).stream.remote(messages)
        try:
            async for delta in stream:
                yield delta
        finally:
            # Reaches the replica as a cancellation: the LLM thread stops within a token.
            stream.cancel()

    async def speak(self, text: str) -> AsyncGenerator[bytes, None]:
        stream = self._tts.options(stream=True).synthesize.remote(text)
        try:
            async for pcm in stream:
                yield pcm
        finally:
            stream.cancel()
