"""Silero VAD through its bundled ONNX model: one model per process, cheap state per session."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import numpy.typing as npt

from dandelion.errors import BackendUnavailableError


class SileroStream:
    def __init__(self, wrapper: Any) -> None:
        import torch

        self._torch = torch
        self._wrapper = wrapper

    def probability(self, frame: npt.NDArray[np.float32]) -> float:
        return float(self._wrapper(self._torch.from_numpy(frame), 16_000).item())


class SileroVAD:
    sample_rate = 16_000
    frame_samples = 512  # 32 ms: the frame size silero's 16 kHz model takes

    def __init__(self) -> None:
        try:
            from silero_vad import load_silero_vad
        except ImportError as exc:
            raise BackendUnavailableError(
                "silero-vad is not installed: pip install 'dandelion[server]'"
            ) from exc
        self._wrapper = load_silero_vad(onnx=True)

    def new_stream(self) -> SileroStream:
        # A shallow copy shares the ONNX InferenceSession (thread-safe, loaded once) and gets
        # its own recurrent state: a new session costs microseconds, not a model load.
        wrapper = copy.copy(self._wrapper)
        wrapper.reset_states()
        return SileroStream(wrapper)
