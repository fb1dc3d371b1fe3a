"""Holds a voice resident; streams PCM16 audio for one chunk of text."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from dandelion.actors.streaming import iterate_in_thread
from dandelion.backends.tts.base import SpeechChunk, SpeechSynthesizer
from dandelion.config import TTSSettings


def load_synthesizer(settings: TTSSettings) -> SpeechSynthesizer:
    if settings.backend == "coqui":
        from dandelion.backends.tts.coqui import CoquiSynthesizer

        return CoquiSynthesizer(settings)
    from dandelion.backends.tts.piper import PiperSynthesizer

    return PiperSynthesizer(settings)


class TTSActor:
    def __init__(self, settings: dict[str, object]) -> None:
        self._engine = load_synthesizer(TTSSettings.model_validate(settings))

    async def sample_rate(self) -> int:
        return self._engine.sample_rate

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        # aclosing: when the consumer leaves (a barge-in), closing this stream waits until the
        # synthesis thread has stopped, instead of leaving that to the garbage collector.
        chunks = iterate_in_thread(lambda _stop: self._engine.synthesize(text))
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk
