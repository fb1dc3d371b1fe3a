"""Voice activity detection: a speech probability for each fixed-size frame."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt


class VADStream(Protocol):
    """Per-session VAD state (models like silero are recurrent)."""

    def probability(self, frame: npt.NDArray[np.float32]) -> float: ...


class VADModel(Protocol):
    sample_rate: int
    frame_samples: int

    def new_stream(self) -> VADStream: ...
