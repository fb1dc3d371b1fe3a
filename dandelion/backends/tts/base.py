"""Text to speech: text in, PCM16 mono chunks at `sample_rate` out, as soon as each is ready."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class SpeechSynthesizer(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[bytes]: ...
