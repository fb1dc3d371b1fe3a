"""Mouth shapes over time: from Piper's phoneme timings, or from the audio alone.

Piper (`synthesize(..., include_alignments=True)`) gives, per sentence, espeak IPA phonemes with
the number of audio samples each one lasts. Each phoneme maps to a viseme (a mouth shape); the
track blends neighbouring visemes by dominance (Cohen-Massaro coarticulation: a bilabial closes
the lips whatever surrounds it, a "k" takes the shape of its vowels) and averages each video
frame over its interval, so the mouth never jumps between frames. Without timings, an envelope
follower turns the loudness of each frame into jaw opening.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dandelion.avatar.base import MouthParams
from dandelion.backends.tts.base import Alignment


class Viseme(enum.Enum):
    REST = "rest"  # silence, punctuation, start/end of a sentence
    CLOSED = "closed"  # m b p
    LIP_TEETH = "lip_teeth"  # f v
    TONGUE_TEETH = "tongue_teeth"  # th (θ ð)
    OPEN = "open"  # a as in "father", "cat", "cup"
    MID = "mid"  # schwa, e as in "bed", "bird"
    WIDE = "wide"  # i as in "see", "sit", e as in "say"
    ROUND = "round"  # o as in "go", "law"
    ROUND_CLOSED = "round_closed"  # u as in "food", "put", w
    RHOTIC = "rhotic"  # r
    POSTALVEOLAR = "postalveolar"  # sh, zh, ch, j
    ALVEOLAR = "alveolar"  # s z t d n l
    VELAR = "velar"  # k g ng h y
    GAP = "gap"  # a word boundary inside speech: barely pulls towards rest


@dataclass(frozen=True, slots=True)
class VisemeShape:
    mouth: MouthParams
    dominance: float
    """How strongly this shape resists its neighbours (bilabials high, velars low)."""


SHAPES: dict[Viseme, VisemeShape] = {
    Viseme.REST: VisemeShape(MouthParams(), 1.0),
    Viseme.CLOSED: VisemeShape(MouthParams(jaw_open=0.0, lip_width=-0.05), 8.0),
    Viseme.LIP_TEETH: VisemeShape(MouthParams(0.1, 0.1, 0.0, teeth=1.0), 4.0),
    Viseme.TONGUE_TEETH: VisemeShape(MouthParams(0.2, 0.15, 0.0, teeth=0.8, tongue=1.0), 1.5),
    Viseme.OPEN: VisemeShape(MouthParams(0.8, 0.15, 0.0, teeth=0.6), 1.0),
    Viseme.MID: VisemeShape(MouthParams(0.45, 0.1, 0.0, teeth=0.5), 0.8),
    Viseme.WIDE: VisemeShape(MouthParams(0.28, 0.7, 0.0, teeth=0.85), 1.0),
    Viseme.ROUND: VisemeShape(MouthParams(0.5, -0.4, 0.7, teeth=0.25), 1.2),
    Viseme.ROUND_CLOSED: VisemeShape(MouthParams(0.18, -0.7, 1.0, teeth=0.1), 1.5),
    Viseme.RHOTIC: VisemeShape(MouthParams(0.22, -0.3, 0.45, teeth=0.35), 0.8),
    Viseme.POSTALVEOLAR: VisemeShape(MouthParams(0.2, -0.3, 0.6, teeth=0.9), 1.5),
    Viseme.ALVEOLAR: VisemeShape(MouthParams(0.18, 0.3, 0.0, teeth=0.8, tongue=0.4), 0.6),
    Viseme.VELAR: VisemeShape(MouthParams(0.3, 0.1, 0.0, teeth=0.4), 0.35),
    Viseme.GAP: VisemeShape(MouthParams(0.1, 0.0, 0.0, teeth=0.2), 0.15),
}

_GROUPS: dict[Viseme, str] = {
    Viseme.CLOSED: "mbpɱ",
    Viseme.LIP_TEETH: "fv",
    Viseme.TONGUE_TEETH: "θð",
    Viseme.OPEN: "aɑæʌɐɶ",  # noqa: RUF001
    Viseme.MID: "əɛɜɚɘɵœøᵻ",
    Viseme.WIDE: "iɪeɨyʏ",  # noqa: RUF001
    Viseme.ROUND: "oɔɒ",
    Viseme.ROUND_CLOSED: "uʊwɯʍɥ",  # noqa: RUF001
    Viseme.RHOTIC: "ɹrɾɝɻʀʁ",
    Viseme.POSTALVEOLAR: "ʃʒɕʑ",
    Viseme.ALVEOLAR: "szʦtdnlɫɬʔ",  # noqa: RUF001
    Viseme.VELAR: "kɡgŋhxɣçjʝqɢɦ",  # noqa: RUF001
    Viseme.REST: '.,;:!?¡¿—…"«»()^$_',
}
PHONEME_VISEMES: dict[str, Viseme] = {
    phoneme: viseme for viseme, phonemes in _GROUPS.items() for phoneme in phonemes
}
# Marks that carry time but no shape: stress belongs to what follows, length to what precedes.
_STRESS = frozenset("ˈˌ")
_LENGTH = frozenset("ːˑ")
_WORD_GAP = " "
_PAUSE_S = 0.12
"""A word gap longer than this is a pause: the mouth rests."""


def phoneme_viseme(phoneme: str) -> Viseme:
    """The viseme of one espeak IPA phoneme (first letter decides; unknown ones are velar-like,
    the most neutral shape, so they take the shape of their neighbours)."""
    if phoneme == _WORD_GAP:
        return Viseme.GAP
    for char in phoneme:
        if char in PHONEME_VISEMES:
            return PHONEME_VISEMES[char]
    return Viseme.VELAR


@dataclass(frozen=True, slots=True)
class Segment:
    viseme: Viseme
    start: float
    end: float


def segments(alignments: Sequence[Alignment], sample_rate: int) -> list[Segment]:
    """Phoneme timings to viseme segments in seconds; stress and length marks merge into the
    phoneme they modify, long word gaps become rests."""
    merged: list[tuple[Viseme, int, int]] = []  # viseme, start sample, end sample
    position = 0
    carry = 0  # samples of stress marks waiting for their phoneme
    for phoneme, num_samples in alignments:
        count = int(num_samples)
        if phoneme in _STRESS:
            carry += count
        elif phoneme in _LENGTH and merged:
            viseme, start, end = merged[-1]
            merged[-1] = (viseme, start, end + count)
        else:
            viseme = phoneme_viseme(phoneme)
            if viseme is Viseme.GAP and count > _PAUSE_S * sample_rate:
                viseme = Viseme.REST
            merged.append((viseme, position - carry, position + count))
            carry = 0
        position += count
    if carry and merged:  # stress with nothing after it: give it back to the last phoneme
        viseme, start, _ = merged[-1]
        merged[-1] = (viseme, start, position)
    return [Segment(v, s / sample_rate, e / sample_rate) for v, s, e in merged]


_COARTICULATION_S = 0.028
"""Width of the blend between neighbouring shapes (standard deviation, seconds)."""
_EDGE_S = 0.015
_MIN_CLOSURE_S = 0.02
_SUBSAMPLES = 4


def _curve(track: Sequence[Segment], times: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Mouth parameters (len(times) x 5) at `times`: dominance-weighted blend of all shapes."""
    if not track:
        return np.zeros((len(times), 5))
    centers = np.array([(s.start + s.end) / 2 for s in track])
    half = np.array([(s.end - s.start) / 2 - _EDGE_S for s in track])
    closed = np.array([s.viseme in (Viseme.CLOSED, Viseme.LIP_TEETH) for s in track])
    half = np.where(closed, np.maximum(half, _MIN_CLOSURE_S), np.maximum(half, 0.0))
    dominance = np.array([SHAPES[s.viseme].dominance for s in track])
    targets = np.stack([SHAPES[s.viseme].mouth.as_array() for s in track])
    distance = np.maximum(np.abs(times[:, None] - centers[None, :]) - half[None, :], 0.0)
    weights = dominance[None, :] * np.exp(-0.5 * (distance / _COARTICULATION_S) ** 2)
    weights += 1e-12
    result: npt.NDArray[np.float64] = (weights @ targets) / weights.sum(axis=1, keepdims=True)
    return result


def viseme_track(
    alignments: Sequence[Alignment],
    sample_rate: int,
    fps: float,
    *,
    offset: float = 0.0,
    lead: float = 0.02,
) -> list[MouthParams]:
    """Mouth parameters for every video frame that starts while this audio plays.

    The audio starts `offset` seconds into the stream; frame k is shown at k / fps. Each frame
    averages the blended shape over its interval, `lead` seconds early (lips move a little before
    the sound they make).
    """
    track = segments(alignments, sample_rate)
    duration = sum(int(n) for _, n in alignments) / sample_rate
    first = math.ceil(offset * fps - 1e-9)
    last = math.ceil((offset + duration) * fps - 1e-9)  # exclusive
    if last <= first:
        return []
    frames = np.arange(first, last, dtype=np.float64)
    sub = (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES
    times = (frames[:, None] + sub[None, :]) / fps - offset + lead
    samples = _curve(track, times.ravel()).reshape(len(frames), _SUBSAMPLES, 5)
    values = samples.mean(axis=1)
    # A frame that holds the middle of a closure shows it closed (never skip an "m").
    closures = [(s.start + s.end) / 2 for s in track if s.viseme is Viseme.CLOSED]
    if closures:
        start = frames / fps - offset + lead
        centers = np.array(closures)
        holds = (
            (centers[None, :] >= start[:, None]) & (centers[None, :] < start[:, None] + 1 / fps)
        ).any(axis=1)
        values[holds, 0] = samples[holds, :, 0].min(axis=1)
        values[holds, 3] = samples[holds, :, 3].min(axis=1)
    return [MouthParams.from_array(row) for row in values]


class VisemeDriver:
    """Streams viseme tracks sentence after sentence without drifting from the audio clock."""

    def __init__(self, fps: float, *, lead: float = 0.02) -> None:
        self.fps = fps
        self._lead = lead
        self._time = 0.0

    def push(self, alignments: Sequence[Alignment], sample_rate: int) -> list[MouthParams]:
        frames = viseme_track(alignments, sample_rate, self.fps, offset=self._time, lead=self._lead)
        self._time += sum(int(n) for _, n in alignments) / sample_rate
        return frames

    def reset(self) -> None:
        self._time = 0.0


class EnvelopeDriver:
    """Jaw opening from loudness, for speech without phoneme timings (any TTS).

    Per video frame: RMS level in dBFS mapped from `floor_db` (closed) to `ceiling_db` (open),
    then a fast-attack, slower-release follower so the mouth snaps open and settles shut.
    """

    def __init__(
        self,
        fps: float,
        *,
        floor_db: float = -50.0,
        ceiling_db: float = -16.0,
        attack: float = 0.7,
        release: float = 0.35,
    ) -> None:
        self.fps = fps
        self._floor = floor_db
        self._ceiling = ceiling_db
        self._attack = attack
        self._release = release
        self._level = 0.0
        self._pending = np.zeros(0, np.float32)
        self._consumed = 0  # samples already turned into frames
        self._frames = 0
        self._sample_rate: int | None = None

    def push(self, pcm: bytes | npt.NDArray[np.int16], sample_rate: int) -> list[MouthParams]:
        """Frames that end within the audio received so far (PCM16 mono)."""
        if self._sample_rate not in (None, sample_rate):
            raise ValueError("EnvelopeDriver: the sample rate changed mid-stream; call reset()")
        self._sample_rate = sample_rate
        samples = np.frombuffer(pcm, np.int16) if isinstance(pcm, bytes) else pcm
        audio = samples.astype(np.float32) / 32768.0
        self._pending = np.concatenate([self._pending, audio])
        out: list[MouthParams] = []
        while True:
            end = round((self._frames + 1) * sample_rate / self.fps)
            size = end - self._consumed
            if size > len(self._pending):
                return out
            frame, self._pending = self._pending[:size], self._pending[size:]
            self._consumed = end
            self._frames += 1
            out.append(self._step(frame))

    def _step(self, frame: npt.NDArray[np.float32]) -> MouthParams:
        rms = float(np.sqrt(np.mean(np.square(frame)))) if len(frame) else 0.0
        db = 20.0 * math.log10(rms + 1e-9)
        target = min(max((db - self._floor) / (self._ceiling - self._floor), 0.0), 1.0)
        rate = self._attack if target > self._level else self._release
        self._level += rate * (target - self._level)
        level = self._level
        return MouthParams(
            jaw_open=0.8 * level, lip_width=0.15 * level, teeth=min(1.0, 1.2 * level)
        )

    def reset(self) -> None:
        self._level = 0.0
        self._pending = np.zeros(0, np.float32)
        self._consumed = 0
        self._frames = 0
        self._sample_rate = None


def envelope_track(
    pcm: bytes | npt.NDArray[np.int16], sample_rate: int, fps: float
) -> list[MouthParams]:
    """Mouth parameters per frame for a whole PCM16 clip (the tail shorter than a frame drops)."""
    return EnvelopeDriver(fps).push(pcm, sample_rate)
