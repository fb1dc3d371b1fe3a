"""Several channels to one, without letting them cancel.

Averaging the channels is right when they carry the same sound (dual mono, a stereo mic). When
one channel is the other inverted (a miswired cable, a balanced output recorded unbalanced), the
mean cancels to silence; inverted and slightly delayed, or at another gain, it cancels in part
(a weaker, comb-filtered voice); and beside a silent channel the mean is 6 dB down. `downmix`
sees these cases and takes the loudest channel alone. `MicDownmix` does the same on a live
microphone's blocks, judging each half second of sound and keeping the first such decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.float32]

LOSS_LIMIT_DB = 4.0
"""The mean this far below the loudest channel, while the other channels add nothing to it
(`ChannelCheck.redundant`), takes that channel alone. Channels that share nothing lose 3 dB
when averaged (wide stereo: kept); one silent channel costs 6 dB."""
ANTIPHASE_CORRELATION = -0.3
"""A channel whose strongest correlation with the loudest one, within `MAX_LAG_MS`, is this
negative is that channel inverted (maybe delayed or at another gain): the loudest is taken."""
COHERENT_CORRELATION = 0.3
"""A channel correlated this much (either sign) with the loudest one carries the same sound."""
FAINT_DB = -20.0
"""A channel this far below the loudest one adds nothing to it."""
MAX_LAG_MS = 5.0
_SEGMENT = 1 << 16


@dataclass(frozen=True, slots=True)
class ChannelCheck:
    """How the channels of some audio would mix."""

    channels: int
    loudest: int  # 0-based
    loss_db: float  # how far the mean's level is below the loudest channel's (inf: silence)
    inverted: int | None  # a channel in antiphase with the loudest one, if any
    faint: bool  # every other channel is `FAINT_DB` or more below the loudest one
    redundant: bool  # every other channel is faint, or carries the loudest one's sound

    @property
    def cancels(self) -> bool:
        """Whether the loudest channel alone is better than the mean."""
        return self.inverted is not None or (self.redundant and self.loss_db > LOSS_LIMIT_DB)

    def warning(self, source: str) -> str:
        """What was done, for people: `source` names the file or device."""
        if self.inverted is not None:
            why = f"channel {self.inverted + 1} is channel {self.loudest + 1} inverted"
        elif self.faint:
            why = "the other channels are near silent"
        else:
            why = "they partly cancel"
        loss = "to silence" if np.isinf(self.loss_db) else f"by {self.loss_db:.1f} dB"
        return (
            f"warning: {source}: averaging its {self.channels} channels would weaken the sound "
            f"{loss} ({why}); using channel {self.loudest + 1} alone, the loudest"
        )


@dataclass(frozen=True, slots=True)
class Downmix:
    audio: Audio  # mono
    check: ChannelCheck | None  # None: the audio had one channel, or no sound

    @property
    def channel(self) -> int | None:
        """The channel used alone (0-based); None where the channels were averaged."""
        return self.check.loudest if self.check is not None and self.check.cancels else None

    def warning(self, source: str) -> str | None:
        """What was done, where one channel was used alone."""
        return self.check.warning(source) if self.check is not None and self.check.cancels else None


def check_channels(frames: npt.NDArray[np.floating], rate: int) -> ChannelCheck | None:
    """`frames` (samples x channels) measured; None with one channel or without any sound."""
    if frames.ndim != 2 or frames.shape[1] < 2:
        return None
    energy = np.zeros(frames.shape[1])
    mean_energy = 0.0
    for start in range(0, len(frames), _SEGMENT):  # in float64, a segment at a time
        piece = frames[start : start + _SEGMENT].astype(np.float64)
        energy += np.einsum("ij,ij->j", piece, piece)
        mean = piece.mean(axis=1)
        mean_energy += float(mean @ mean)
    loudest = int(np.argmax(energy))
    if energy[loudest] <= 0.0:
        return None
    loss_db = np.inf if mean_energy <= 0.0 else 10 * np.log10(energy[loudest] / mean_energy)
    max_lag = max(1, round(rate * MAX_LAG_MS / 1000))
    inverted, faint, redundant = None, True, True
    for other in range(frames.shape[1]):
        if other == loudest or energy[other] <= energy[loudest] * 10 ** (FAINT_DB / 10):
            continue
        faint = False
        correlation = _correlation(frames[:, loudest], frames[:, other], max_lag)
        peak = correlation[np.argmax(np.abs(correlation))]
        peak /= np.sqrt(energy[loudest] * energy[other])
        if peak <= ANTIPHASE_CORRELATION and inverted is None:
            inverted = other
        if abs(peak) < COHERENT_CORRELATION:
            redundant = False
    return ChannelCheck(frames.shape[1], loudest, float(loss_db), inverted, faint, redundant)


def downmix(frames: npt.NDArray[np.floating], rate: int) -> Downmix:
    """Mono from `frames` (samples x channels, or 1-D): the mean of the channels, or the
    loudest channel alone where the mean would cancel (see `ChannelCheck.cancels`)."""
    if frames.ndim == 1:
        return Downmix(np.ascontiguousarray(frames, dtype=np.float32), None)
    check = check_channels(frames, rate)
    alone = check.loudest if check is not None and check.cancels else None
    mono = frames.mean(axis=1) if alone is None else frames[:, alone]
    return Downmix(np.ascontiguousarray(mono, dtype=np.float32), check)


class MicDownmix:
    """A live microphone's channels to one, block by block.

    It averages until `window_s` of sound (blocks whose loudest channel is above `floor_dbfs`)
    show channels that cancel; from then on it takes the loudest of them alone, for the rest of
    the session, and calls `warn` once to say so. Each `window_s` of sound is judged anew.
    """

    def __init__(
        self,
        rate: int,
        source: str,
        warn: Callable[[str], None],
        window_s: float = 0.5,
        floor_dbfs: float = -50.0,
    ) -> None:
        self.rate = rate
        self.source = source
        self.channel: int | None = None  # the channel used alone, once decided
        self._warn = warn
        self._window = round(window_s * rate)
        self._floor = 10 ** (floor_dbfs / 20)
        self._blocks: list[npt.NDArray[np.float32]] = []
        self._held = 0

    def __call__(self, block: npt.NDArray[np.float32]) -> Audio:
        """One block (samples x channels, float) -> mono."""
        if self.channel is None and block.shape[1] > 1:
            if np.sqrt(np.mean(block**2, axis=0)).max() > self._floor:
                self._blocks.append(block.copy())
                self._held += len(block)
            if self._held >= self._window:
                check = check_channels(np.concatenate(self._blocks), self.rate)
                self._blocks.clear()
                self._held = 0
                if check is not None and check.cancels:
                    self.channel = check.loudest
                    self._warn(check.warning(self.source))
        if self.channel is not None:
            return np.ascontiguousarray(block[:, self.channel], dtype=np.float32)
        return np.ascontiguousarray(block.mean(axis=1), dtype=np.float32)


def _correlation(
    a: npt.NDArray[np.floating], b: npt.NDArray[np.floating], max_lag: int
) -> npt.NDArray[np.float64]:
    """sum(a[n] * b[n + lag]) for lag in -max_lag..max_lag, by FFT, a segment at a time."""
    size = 1 << max((4 * max_lag).bit_length(), min(16, (len(a) + 2 * max_lag).bit_length()))
    segment = size - 2 * max_lag
    total = np.zeros(2 * max_lag + 1)
    for start in range(0, len(a), segment):
        piece = a[start : start + segment]
        around = np.zeros(len(piece) + 2 * max_lag)  # b[start - max_lag : ... + max_lag]
        first = max(0, start - max_lag)
        found = b[first : start + len(piece) + max_lag]
        around[first - (start - max_lag) :][: len(found)] = found
        spectrum = np.conj(np.fft.rfft(piece, size)) * np.fft.rfft(around, size)
        total += np.fft.irfft(spectrum, size)[: 2 * max_lag + 1]
    return total
