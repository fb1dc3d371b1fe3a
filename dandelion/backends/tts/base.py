"""Text to speech: text in, PCM16 mono chunks at `sample_rate` out, as soon as each is ready."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

Alignment = tuple[str, int]
"""A phoneme and how many audio samples it lasts."""


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    pcm: bytes
    # Phoneme timings for lip-sync, where the backend gives them (they sum to the audio length).
    alignments: tuple[Alignment, ...] | None = None


class SpeechSynthesizer(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[SpeechChunk]: ...
