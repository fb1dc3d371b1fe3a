"""What a session needs from the model stages, whatever runs them (Serve handles, or in-process)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol


class Stages(Protocol):
    output_sample_rate: int

    async def transcribe(self, pcm16: bytes) -> str:
        """PCM16LE mono 16 kHz utterance in, its text out."""
        ...

    def chat(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        """Stream the reply's text deltas; closing the iterator aborts generation."""
        ...

    def speak(self, text: str) -> AsyncGenerator[bytes, None]:
        """Stream PCM16LE mono audio at `output_sample_rate` for one chunk of text."""
        ...
