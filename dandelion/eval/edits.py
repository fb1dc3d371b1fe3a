"""A turn's audio as a clip, and the scenario edits applied to it (scenario.py, `Edit`).

Edits work on float32 mono audio at 16 kHz and keep track of where it sounds (`spans`); the
delivery format (sample rate, channel layout) is only recorded, and `deliver` writes it.
Pure numpy apart from `deliver`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from dandelion.eval.scenario import Edit, InsertSilence, MixNoise, StereoLayout, SuiteError
from dandelion.protocol import INPUT_SAMPLE_RATE

RATE = INPUT_SAMPLE_RATE
"""The working rate of every clip (what the client sends)."""

Audio = npt.NDArray[np.float32]
Spans = tuple[tuple[int, int], ...]
"""(start, end) sample indices, sorted and not overlapping; end is exclusive."""
Layout = Literal["mono"] | StereoLayout
NoiseMaker = Callable[[MixNoise, int], Audio]
"""(what noise, how many samples) -> that noise at RMS 1.0, 16 kHz."""

TELEPHONE_BAND_HZ = (300.0, 3400.0)
_BAND_RAMP_HZ = 100.0
_QUIET_WINDOW_S = 0.02
_QUIET_SEARCH_S = 0.3


@dataclass(frozen=True)
class Clip:
    """Audio being built: float32 mono at 16 kHz, where it sounds, and how to deliver it."""

    audio: Audio
    spans: Spans = ()
    rate: int = RATE
    """The delivered file's sample rate (the audio is resampled on delivery)."""
    layout: Layout = "mono"


def rms(audio: npt.NDArray[np.floating[Any]], spans: Spans | None = None) -> float:
    """Root mean square over `spans` (all of it when None or empty); 0.0 for no samples."""
    parts = [audio[a:b] for a, b in spans] if spans else [audio]
    total = sum(float(np.sum(np.square(p, dtype=np.float64))) for p in parts)
    count = sum(len(p) for p in parts)
    return float(np.sqrt(total / count)) if count else 0.0


def find_spans(
    audio: Audio,
    rate: int = RATE,
    *,
    floor_db: float = 35.0,
    bridge_s: float = 0.25,
    min_s: float = 0.05,
) -> Spans:
    """Where a recording sounds: 10 ms frames within `floor_db` of the loudest frame, gaps
    shorter than `bridge_s` closed, islands shorter than `min_s` dropped. () if all silent."""
    frame = rate // 100
    frames = -(-len(audio) // frame)
    if frames == 0:
        return ()
    padded = np.zeros(frames * frame, dtype=np.float64)
    padded[: len(audio)] = audio
    level = np.sqrt(np.mean(padded.reshape(frames, frame) ** 2, axis=1))
    peak = float(level.max())
    if peak <= 0.0:
        return ()
    loud = np.concatenate(([False], level > peak * 10 ** (-floor_db / 20), [False]))
    edges = np.flatnonzero(np.diff(loud.astype(np.int8)))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    if not runs:  # floor_db 0: nothing is louder than the loudest
        return ()
    merged: list[tuple[int, int]] = [runs[0]]
    for start, end in runs[1:]:
        if (start - merged[-1][1]) * frame < bridge_s * rate:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(
        (start * frame, min(end * frame, len(audio)))
        for start, end in merged
        if (end - start) * frame >= min_s * rate
    )


def apply_edit(clip: Clip, edit: Edit, noise: NoiseMaker) -> Clip:
    """The clip with one edit applied (each field's meaning: scenario.py, `Edit`)."""
    if edit.gain_db is not None:
        return replace(clip, audio=_scaled(clip.audio, 10 ** (edit.gain_db / 20)))
    if edit.clip_drive_db is not None:
        return replace(clip, audio=_overdriven(clip.audio, edit.clip_drive_db))
    if edit.noise is not None:
        return replace(clip, audio=_with_noise(clip, edit.noise, noise))
    if edit.telephone is not None:
        if not edit.telephone:
            return clip
        return replace(clip, audio=band_limited(clip.audio, *TELEPHONE_BAND_HZ), rate=8000)
    if edit.stereo is not None:
        return replace(clip, layout=edit.stereo)
    if edit.sample_rate is not None:
        return replace(clip, rate=edit.sample_rate)
    if edit.lead_silence_s is not None:
        return _with_silence(clip, 0, round(edit.lead_silence_s * RATE))
    if edit.insert_silence is not None:
        return _with_inserted_silence(clip, edit.insert_silence)
    if edit.reverse is not None:
        if not edit.reverse:
            return clip
        n = len(clip.audio)
        spans = tuple((n - end, n - start) for start, end in reversed(clip.spans))
        return replace(clip, audio=np.ascontiguousarray(clip.audio[::-1]), spans=spans)
    raise AssertionError(f"unhandled edit {edit.name}")  # Edit validates exactly one field


def band_limited(audio: Audio, low_hz: float, high_hz: float) -> Audio:
    """Nothing below `low_hz` or above `high_hz`: an FFT mask with 100 Hz raised-cosine ramps
    inside the band (a brick wall rings audibly before and after each word)."""
    freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
    rise = np.clip((freqs - low_hz) / _BAND_RAMP_HZ, 0.0, 1.0)
    fall = np.clip((high_hz - freqs) / _BAND_RAMP_HZ, 0.0, 1.0)
    mask = np.sin(rise * np.pi / 2) ** 2 * np.sin(fall * np.pi / 2) ** 2
    return np.fft.irfft(np.fft.rfft(audio) * mask, len(audio)).astype(np.float32)


def deliver(clip: Clip, path: Path) -> Path:
    """Write the clip as the file the client is given: 16-bit PCM WAV at `clip.rate`, with
    the channels of `clip.layout` (dual_mono [x, x], left_only [x, 0], right_only [0, x],
    antiphase [x, -x])."""
    import soundfile as sf
    import soxr

    audio = clip.audio
    if clip.rate != RATE:
        audio = soxr.resample(audio, RATE, clip.rate)
    # libsndfile wraps rather than clips samples beyond full scale when it writes integers.
    x = np.clip(audio, -1.0, 1.0).astype(np.float32)
    silent = np.zeros_like(x)
    channels = {
        "mono": (x,),
        "dual_mono": (x, x),
        "left_only": (x, silent),
        "right_only": (silent, x),
        "antiphase": (x, -x),
    }[clip.layout]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.stack(channels, axis=1), clip.rate, subtype="PCM_16")
    return path


def _scaled(audio: Audio, factor: float) -> Audio:
    return (audio * np.float32(factor)).astype(np.float32)


def _overdriven(audio: Audio, drive_db: float) -> Audio:
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak == 0.0:
        return audio
    return np.clip(_scaled(audio, 10 ** (drive_db / 20) / peak), -1.0, 1.0)


def _with_noise(clip: Clip, mix: MixNoise, noise: NoiseMaker) -> Audio:
    speech = rms(clip.audio, clip.spans)
    if speech == 0.0:
        raise SuiteError(f"cannot mix {mix.kind} noise at an SNR into audio that is all silence")
    under = noise(mix, len(clip.audio)).astype(np.float64)
    level = rms(under)
    if level == 0.0:
        raise SuiteError(f"{mix.kind} noise came out silent")
    # The noise's RMS over the whole clip, speech's over its spans: SNR as a listener hears it.
    gain = speech / (level * 10 ** (mix.snr_db / 20))
    return (clip.audio + gain * under).astype(np.float32)


def _with_silence(clip: Clip, at: int, samples: int) -> Clip:
    """`samples` zeros inserted before sample `at`; a span across `at` is split there."""
    audio = np.concatenate((clip.audio[:at], np.zeros(samples, dtype=np.float32), clip.audio[at:]))
    spans: list[tuple[int, int]] = []
    for start, end in clip.spans:
        if end <= at:
            spans.append((start, end))
        elif start >= at:
            spans.append((start + samples, end + samples))
        else:
            spans += [(start, at), (at + samples, end + samples)]
    return replace(clip, audio=audio, spans=tuple(spans))


def _with_inserted_silence(clip: Clip, insert: InsertSilence) -> Clip:
    if insert.at_s > len(clip.audio) / RATE:
        raise SuiteError(
            f"insert_silence at {insert.at_s:g} s: the audio lasts {len(clip.audio) / RATE:.2f} s"
        )
    return _with_silence(
        clip, quietest_point(clip.audio, insert.at_s), round(insert.seconds * RATE)
    )


def quietest_point(audio: Audio, at_s: float) -> int:
    """The sample index at the middle of the quietest 20 ms within 0.3 s of `at_s`, the closest
    to `at_s` among equally quiet ones (a word boundary, in a real recording)."""
    window = round(_QUIET_WINDOW_S * RATE)
    centre = min(round(at_s * RATE), len(audio))
    lo = max(0, centre - round(_QUIET_SEARCH_S * RATE))
    hi = min(len(audio), centre + round(_QUIET_SEARCH_S * RATE))
    if hi - lo < window:
        return centre
    energy = np.concatenate(([0.0], np.cumsum(np.square(audio[lo:hi], dtype=np.float64))))
    per_window = energy[window:] - energy[:-window]
    quiet = np.flatnonzero(per_window <= per_window.min() + 1e-9)
    middles = lo + quiet + window // 2
    return int(middles[np.argmin(np.abs(middles - centre))])
