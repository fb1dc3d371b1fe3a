"""Non-speech sounds for the eval bench, made from a seed: float32 mono at 16 kHz.

Each comes back at RMS 1.0 over the part that sounds (its peaks go past full scale); the caller
sets the level. Same kind, length and seed: same samples (babble: same VoiceBank results).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from dandelion.eval.edits import RATE, Audio, Spans, band_limited, rms
from dandelion.eval.scenario import SoundKind
from dandelion.eval.voices import VoiceBank, espeak_installed

Signal = npt.NDArray[np.float64]
EventMaker = Callable[[np.random.Generator, int], Signal]
"""(generator, samples) -> one event (a hum, a sigh) that long."""

BABBLE_VOICES = ("piper", "espeak:en-us+m3", "espeak:en-gb+f3", "espeak:en-us+f2")
BABBLE_PIPER_SPEEDS = (0.85, 1.0, 1.2)
"""Babble without espeak-ng: the one Piper voice at different speeds, as different talkers."""
_BABBLE_LINES = (
    "I told her we would be there by eight, but the traffic was terrible.",
    "Have you tried the new place on the corner? The soup is really good.",
    "He says the meeting moved to Thursday, so we have a little more time.",
    "My brother bought a boat last summer and now he never answers his phone.",
    "We should ask about the tickets before they are all gone.",
    "The garden looks lovely this year, the roses came back after the frost.",
    "I don't think the train stops there on Sundays anymore.",
    "She was laughing so hard she had to sit down on the stairs.",
)
# C major: C, G, A minor, F (semitones above middle C).
_CHORDS = ((0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12))
_MIDDLE_C_HZ = 261.63
_NOTE_HARMONICS = np.array([1.0, 0.5, 0.3, 0.15])[:, np.newaxis]


def make_sound(
    kind: SoundKind, samples: int, *, seed: int = 0, voices: VoiceBank | None = None
) -> Audio:
    """`samples` of `kind` at RMS 1.0 over its sounding part; `voices` is needed for babble."""
    rng = np.random.default_rng(seed)
    spans: Spans = ((0, samples),)
    if kind == "babble":
        if voices is None:
            raise ValueError("babble is made of speech: pass a VoiceBank")
        audio = _babble(rng, samples, voices)
    elif kind in ("white", "pink", "brown"):
        audio = _colored_noise(rng, samples, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
    elif kind == "music":
        audio = _music(rng, samples)
    elif kind == "hum":
        audio, spans = _events(rng, samples, _hum, length_s=(1.2, 1.8), gap_s=(0.2, 0.45))
    else:
        audio, spans = _events(rng, samples, _sigh, length_s=(1.0, 1.4), gap_s=(0.8, 1.6))
    level = rms(audio, spans)
    return (audio / level if level > 0 else audio).astype(np.float32)


def _colored_noise(rng: np.random.Generator, n: int, exponent: float) -> Signal:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), nothing below 20 Hz
    (a brown spectrum would otherwise put most of its power in inaudible rumble)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    shape = np.where(freqs >= 20.0, np.maximum(freqs, 20.0) ** (-exponent / 2), 0.0)
    return np.fft.irfft(spectrum * shape, n)


def _events(
    rng: np.random.Generator,
    n: int,
    make: EventMaker,
    *,
    length_s: tuple[float, float],
    gap_s: tuple[float, float],
) -> tuple[Signal, Spans]:
    """The length filled with events (hums, sighs) of random lengths and gaps, starting at 0;
    the last one shortened to fit (none shorter than half the shortest, but always one)."""
    audio = np.zeros(n)
    spans: list[tuple[int, int]] = []
    at = 0
    shortest = round(length_s[0] / 2 * RATE)
    while at < n and (not spans or n - at >= shortest):
        length = min(round(rng.uniform(*length_s) * RATE), n - at)
        audio[at : at + length] = make(rng, length)
        spans.append((at, at + length))
        at += length + round(rng.uniform(*gap_s) * RATE)
    return audio, tuple(spans)


def _hum(rng: np.random.Generator, n: int) -> Signal:
    """A person humming one note: 120-180 Hz, ~5 Hz vibrato, a slight fall in pitch, a closed
    mouth's harmonics (strong fundamental, quickly weaker overtones), swelling in and out."""
    t = np.arange(n) / RATE
    f0 = rng.uniform(120.0, 180.0)
    vibrato = 1 + 0.012 * np.sin(2 * np.pi * rng.uniform(4.5, 6.0) * t)
    glide = 1 - 0.04 * t / max(t[-1], 1e-9) if n else t
    phase = 2 * np.pi * np.cumsum(f0 * vibrato * glide) / RATE
    harmonic = np.arange(1, 9)[:, np.newaxis]
    tone = (0.55 ** (harmonic - 1) * np.sin(harmonic * phase)).sum(axis=0)
    return np.asarray(tone * _swell(n, attack=0.25, release=0.35), dtype=np.float64)


def _sigh(rng: np.random.Generator, n: int) -> Signal:
    """A breathy exhale: 200-3,000 Hz noise, a quick rise then a long fall."""
    breath = band_limited(rng.standard_normal(n).astype(np.float32), 200.0, 3000.0)
    rise = min(n, round(rng.uniform(0.12, 0.22) * RATE))
    envelope = np.concatenate(
        (np.sin(np.linspace(0, np.pi / 2, rise)) ** 2, np.linspace(1, 0, n - rise) ** 1.8)
    )
    return np.asarray(breath * envelope, dtype=np.float64)


def _swell(n: int, *, attack: float, release: float) -> Signal:
    """A fade in over the first `attack`, a fade out over the last `release` (shares of n)."""
    up = np.clip(np.arange(n) / max(1, attack * n), 0, 1)
    down = np.clip((n - np.arange(n)) / max(1, release * n), 0, 1)
    return np.asarray(np.sin(np.pi / 2 * up) ** 2 * np.sin(np.pi / 2 * down) ** 2)


def _music(rng: np.random.Generator, n: int) -> Signal:
    """A tune over C-G-Am-F: a soft chord pad per bar, a bass note per half bar, a melody of
    chord tones on beats and off-beats, at a tempo of 88-120 beats per minute."""
    beat = round(60 / rng.uniform(88, 120) * RATE)
    audio = np.zeros(n + 4 * beat)  # room for the last bar's notes; cut to n at the end
    bar = 0
    while bar * 4 * beat < n:
        chord = _CHORDS[bar % len(_CHORDS)]
        start = bar * 4 * beat
        for semitone in chord:
            _add_note(audio, start, 4 * beat, _pitch(semitone), 0.12)
        for half in range(2):
            _add_note(audio, start + half * 2 * beat, 2 * beat, _pitch(chord[0] - 24), 0.35)
        for step in range(8):
            if step % 2 and rng.random() < 0.5:
                continue  # an off-beat rest: the melody breathes
            length = beat if step % 2 == 0 and rng.random() < 0.4 else beat // 2
            note = chord[rng.integers(len(chord))] + 12
            _add_note(audio, start + step * beat // 2, length, _pitch(note), 0.3)
        bar += 1
    return audio[:n]


def _pitch(semitones_above_middle_c: int) -> float:
    return float(_MIDDLE_C_HZ * 2 ** (semitones_above_middle_c / 12))


def _add_note(audio: Signal, start: int, length: int, freq: float, velocity: float) -> None:
    """A note with four harmonics and an ADSR envelope (10 ms attack, 80 ms decay to 60 %,
    a 120 ms release at the end of `length`), added into `audio` in place."""
    t = np.arange(length) / RATE
    harmonic = np.arange(1, 5)[:, np.newaxis]
    tone = (_NOTE_HARMONICS * np.sin(2 * np.pi * harmonic * freq * t)).sum(axis=0)
    attack, decay, release = (round(s * RATE) for s in (0.01, 0.08, 0.12))
    envelope = np.full(length, 0.6)
    envelope[:decay] = np.linspace(1.0, 0.6, decay)[:length]
    envelope[:attack] = np.linspace(0.0, 1.0, attack)[:length]
    envelope[-release:] *= np.linspace(1.0, 0.0, release)[-length:]
    audio[start : start + length] += velocity * tone * envelope


def _babble(rng: np.random.Generator, n: int, voices: VoiceBank) -> Signal:
    """Talk in the background: each talker says four of the lines, each line reversed in time
    (it sounds like speech, no word can be made out), looped to `n` from a random offset, and
    the talkers summed at equal loudness."""
    if espeak_installed():
        talkers = [(voice, 1.0) for voice in BABBLE_VOICES]
    else:
        talkers = [("piper", speed) for speed in BABBLE_PIPER_SPEEDS]
    mixed = np.zeros(n)
    for voice, speed in talkers:
        parts: list[Signal] = []
        for line in rng.choice(_BABBLE_LINES, size=4, replace=False):
            parts.append(voices.speak(str(line), voice, speed)[::-1].astype(np.float64))
            parts.append(np.zeros(round(rng.uniform(0.1, 0.35) * RATE)))
        track = np.concatenate(parts)
        loop = np.take(track, (np.arange(n) + rng.integers(len(track))) % len(track))
        level = rms(loop)
        mixed += loop / level if level > 0 else loop
    return mixed
