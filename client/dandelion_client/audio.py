"""Audio helpers for the client: read any file, downmix, resample, find where the speech ends."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from dandelion.protocol import INPUT_SAMPLE_RATE
from dandelion_client.downmix import Audio, downmix

__all__ = ["Audio", "from_pcm16", "load_audio", "speech_end_seconds", "to_pcm16", "write_wav"]


def load_audio(path: str | Path, rate: int = INPUT_SAMPLE_RATE) -> Audio:
    """Any file soundfile reads (WAV, FLAC, OGG...), any rate and channel count -> mono `rate`.

    Channels that would cancel when averaged give their loudest one alone, with a warning on
    stderr (see `downmix`)."""
    import soundfile as sf
    import soxr

    data, source_rate = sf.read(str(path), dtype="float32", always_2d=True)
    mixed = downmix(data, source_rate)
    warning = mixed.warning(str(path))
    if warning is not None:
        print(warning, file=sys.stderr)
    mono = mixed.audio
    if source_rate != rate:
        mono = soxr.resample(mono, source_rate, rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def to_pcm16(audio: Audio) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def from_pcm16(pcm: bytes) -> Audio:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def speech_end_seconds(audio: Audio, rate: int = INPUT_SAMPLE_RATE, frame_ms: int = 10) -> float:
    """Where the last frame louder than -35 dB below the file's peak ends (0 if all silent)."""
    frame = rate * frame_ms // 1000
    usable = len(audio) - len(audio) % frame
    if usable == 0:
        return 0.0
    rms = np.sqrt(np.mean(audio[:usable].reshape(-1, frame) ** 2, axis=1))
    peak = float(rms.max())
    if peak <= 0.0:
        return 0.0
    loud = np.nonzero(rms > peak * 10 ** (-35 / 20))[0]
    return float((loud[-1] + 1) * frame / rate)


def write_wav(path: str | Path, pcm: bytes, rate: int) -> None:
    import soundfile as sf

    sf.write(str(path), from_pcm16(pcm), rate, subtype="PCM_16")
