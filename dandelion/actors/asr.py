"""Holds a speech recognizer resident; one utterance per call."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from dandelion.backends.asr.base import SpeechRecognizer
from dandelion.config import ASRSettings


def load_recognizer(settings: ASRSettings) -> SpeechRecognizer:
    from dandelion.backends.asr.faster_whisper import FasterWhisperRecognizer

    return FasterWhisperRecognizer(settings)


class ASRActor:
    def __init__(self, settings: dict[str, object]) -> None:
        self._engine = load_recognizer(ASRSettings.model_validate(settings))
        # One decode at a time per replica: on CPU a second one only slows both down.
        self._lock = asyncio.Lock()

    async def transcribe(self, pcm16: bytes) -> dict[str, object]:
        """PCM16LE mono 16 kHz in; the transcript as plain values (`Transcript.to_dict`: the
        text, Whisper's confidence, the language) and `seconds`, how long the model took."""
        audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
        async with self._lock:
            started = time.perf_counter()
            transcript = await asyncio.to_thread(self._engine.transcribe, audio)
        return {**transcript.to_dict(), "seconds": time.perf_counter() - started}
