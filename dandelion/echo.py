"""Is the microphone hearing the reply's own audio? Pure numpy (and soxr to resample).

A client without echo cancellation (a loudspeaker, a browser without it, a phone bridge) sends
the reply back to the server, which must not take it for the user speaking over the reply. The
server knows what it sent and where the client's playback stands (playback.py), so it compares
the microphone's recent audio with the reply audio around that position: a strong normalized
cross-correlation at some delay means echo. A person speaking over the echo decorrelates it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

Audio = npt.NDArray[np.float32]

ECHO_LIKENESS = 0.5
"""Correlation above which a microphone window is taken for the reply's echo."""


class EchoReference:
    """The reply's audio at the microphone's sample rate, as sent to the client.

    `add` takes PCM16LE mono at `output_rate`; positions are samples at `input_rate`.
    """

    def __init__(self, output_rate: int, input_rate: int = 16_000) -> None:
        self._output_rate = output_rate
        self._input_rate = input_rate
        self._parts: list[Audio] = []
        self._audio: Audio = np.zeros(0, dtype=np.float32)

    def add(self, pcm16: bytes) -> None:
        samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
        if self._output_rate != self._input_rate:
            samples = soxr.resample(samples, self._output_rate, self._input_rate, quality="QQ")
        self._parts.append(samples.astype(np.float32))

    def _reference(self) -> Audio:
        if self._parts:
            self._audio = np.concatenate([self._audio, *self._parts])
            self._parts.clear()
        return self._audio

    def likeness(
        self, mic: Audio, position: int, max_delay: int = 9_600, lead: int = 3_200
    ) -> float:
        """The best normalized correlation of `mic` (the latest microphone samples) with the
        reply audio ending anywhere in [position - max_delay, position + lead].

        `position`: reply samples (at the input rate) the client has played by now, estimated.
        0.0 when there is no reply audio there or the microphone is silent.
        """
        n = len(mic)
        # Silence before the reply's first sample: the microphone window may reach back there.
        reference = np.concatenate((np.zeros(n, dtype=np.float32), self._reference()))
        lo = max(0, position - max_delay)
        hi = min(len(reference), position + n + lead)
        segment = reference[lo:hi]
        if n == 0 or len(segment) < n or not segment.any():
            return 0.0
        mic = mic - mic.mean()
        mic_norm = float(np.linalg.norm(mic))
        if mic_norm < 1e-6:
            return 0.0
        size = 1 << int(np.ceil(np.log2(len(segment) + n)))
        spectrum = np.fft.rfft(segment, size) * np.conj(np.fft.rfft(mic, size))
        correlation = np.fft.irfft(spectrum, size)[: len(segment) - n + 1]
        energy = np.concatenate(([0.0], np.cumsum(segment.astype(np.float64) ** 2)))
        window_energy = energy[n:] - energy[:-n]
        denominator = np.sqrt(np.maximum(window_energy, 1e-12)) * mic_norm
        return float(np.max(correlation / denominator))
