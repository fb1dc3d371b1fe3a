"""Speech recognition: 16 kHz mono float audio in, text out."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt


class SpeechRecognizer(Protocol):
    sample_rate: int

    def transcribe(self, audio: npt.NDArray[np.float32]) -> str: ...
