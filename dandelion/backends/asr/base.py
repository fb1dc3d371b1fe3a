"""Speech recognition: 16 kHz mono float audio in, a transcript and its confidence out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the recognizer heard, with Whisper's own signals of whether it was speech.

    One utterance is one decode (one segment), so each signal is that decode's. The defaults are
    those of a confident transcript, so a fake stage can return `Transcript("hello")`.
    """

    text: str
    # P(<|nospeech|>) at the start of the decode: high on silence and noise.
    no_speech_prob: float = 0.0
    # Mean log probability of the decoded tokens (Whisper's `avg_logprob`): low when guessing.
    avg_logprob: float = 0.0
    # gzip ratio of the text (Whisper's `compression_ratio`): high when the decode loops.
    compression_ratio: float = 1.0
    # The spoken language and its probability, when a multilingual model identified it.
    language: str | None = None
    language_probability: float | None = None
    # avg_logprob of the same audio decoded played backwards, when the decode was unsure enough
    # to check: speech decodes worse reversed; speech played in reverse decodes better.
    reversed_logprob: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values only: crosses a Ray hop as it is."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """From `to_dict`'s keys; other keys (the actor's `seconds`) are ignored."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class SpeechRecognizer(Protocol):
    sample_rate: int

    def transcribe(self, audio: npt.NDArray[np.float32]) -> Transcript: ...
