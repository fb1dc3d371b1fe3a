"""Silero VAD v6 (MIT) on onnxruntime: one model per process, a few hundred floats per session.

The ONNX file is the one faster-whisper ships (`faster_whisper/assets/silero_vad_v6.onnx`),
found without importing faster-whisper itself (CTranslate2, PyAV, tokenizers). Its graph takes
`input`, a sequence of frames of shape (n, 576): each 512-sample frame behind the last 64
samples of the frame before it; and `h`, `c`, the LSTM's state, (1, 1, 128) each. It returns one
speech probability per frame and the state after the last one. Streaming is that graph with
n = 1, the state and the 64 context samples kept per session in a `SileroStream`.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dandelion.errors import BackendUnavailableError

_MODEL_FILE = ("assets", "silero_vad_v6.onnx")
_CONTEXT_SAMPLES = 64  # silero reads this much of the previous frame before each 16 kHz frame
_STATE_SHAPE = (1, 1, 128)
_OUTPUTS = ["speech_probs", "hn", "cn"]


def model_path() -> Path:
    """The Silero VAD ONNX file inside the installed faster-whisper package (not imported)."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "faster-whisper is not installed (it ships the Silero VAD model): "
            "pip install 'dandelion[server]'"
        )
    folders = list(spec.submodule_search_locations)
    for folder in folders:
        path = Path(folder, *_MODEL_FILE)
        if path.is_file():
            return path
    raise BackendUnavailableError(
        f"faster-whisper in {folders[0]} lacks {'/'.join(_MODEL_FILE)} (Silero VAD): "
        "reinstall it, pip install --force-reinstall 'faster-whisper==1.2.1'"
    )


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
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)

    def probability(self, frame: npt.NDArray[np.float32]) -> float:
        if frame.shape != (self._frame_samples,):
            raise ValueError(
                f"Silero VAD takes mono frames of {self._frame_samples} samples "
                f"(32 ms at 16 kHz), got an array of shape {frame.shape}"
            )
        row = self._input[0]
        row[:_CONTEXT_SAMPLES] = row[-_CONTEXT_SAMPLES:]
        row[_CONTEXT_SAMPLES:] = frame
        probabilities, self._h, self._c = self._session.run(
            _OUTPUTS, {"input": self._input, "h": self._h, "c": self._c}
        )
        return float(probabilities[0])


class SileroVAD:
    sample_rate = 16_000
    frame_samples = 512  # 32 ms: the frame size silero's 16 kHz model takes

    def __init__(self) -> None:
        # Loaded once per process (~1 MB model); every SileroVAD shares it.
        self._session = _inference_session()

    def new_stream(self) -> SileroStream:
        return SileroStream(self._session, self.frame_samples)
