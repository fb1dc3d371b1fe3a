"""Visemes and mouth tracks: from phoneme timings (Piper's alignments) and from loudness."""

# ruff: noqa: RUF001 (IPA phonemes are the data here)

from __future__ import annotations

import numpy as np
import pytest

from dandelion.avatar.base import MouthParams
from dandelion.avatar.visemes import (
    EnvelopeDriver,
    Viseme,
    VisemeDriver,
    envelope_track,
    phoneme_viseme,
    segments,
    viseme_track,
)

RATE = 22050
# "Hello there." as piper's joe voice aligns it (phoneme, samples).
HELLO = [
    ("^", 768), ("h", 768), ("ə", 1280), ("l", 1280), ("ˈ", 768), ("o", 1536), ("ʊ", 768),
    (" ", 1024), ("ð", 1280), ("ˈ", 1536), ("ɛ", 1024), ("ɹ", 1792), (".", 1024), ("$", 3584),
]  # fmt: skip


def test_phonemes_map_to_the_expected_shapes() -> None:
    expected = {
        "m": Viseme.CLOSED, "b": Viseme.CLOSED, "p": Viseme.CLOSED, "f": Viseme.LIP_TEETH,
        "v": Viseme.LIP_TEETH, "θ": Viseme.TONGUE_TEETH, "ð": Viseme.TONGUE_TEETH,
        "a": Viseme.OPEN, "æ": Viseme.OPEN, "i": Viseme.WIDE, "ɪ": Viseme.WIDE,
        "o": Viseme.ROUND, "u": Viseme.ROUND_CLOSED, "w": Viseme.ROUND_CLOSED,
        "ʃ": Viseme.POSTALVEOLAR, "s": Viseme.ALVEOLAR, "k": Viseme.VELAR, "ɹ": Viseme.RHOTIC,
        ".": Viseme.REST, "^": Viseme.REST, "$": Viseme.REST, " ": Viseme.GAP,
        "ə": Viseme.MID, "¤": Viseme.VELAR,
    }  # fmt: skip
    for phoneme, viseme in expected.items():
        assert phoneme_viseme(phoneme) is viseme, phoneme


def test_stress_joins_the_next_phoneme_and_length_the_previous() -> None:
    track = segments([("ˈ", 100), ("a", 200), ("ː", 50), ("m", 100)], 1000)
    assert [s.viseme for s in track] == [Viseme.OPEN, Viseme.CLOSED]
    assert (track[0].start, track[0].end) == (0.0, 0.35)
    assert (track[1].start, track[1].end) == (0.35, 0.45)


def test_a_long_word_gap_is_a_rest() -> None:
    short, long = segments([(" ", 1000)], RATE), segments([(" ", 5000)], RATE)
    assert short[0].viseme is Viseme.GAP
    assert long[0].viseme is Viseme.REST


def test_one_frame_per_video_frame_of_audio() -> None:
    samples = sum(n for _, n in HELLO)
    frames = viseme_track(HELLO, RATE, 25.0)
    assert len(frames) == int(np.ceil(samples / RATE * 25))
    assert all(isinstance(f, MouthParams) for f in frames)
    assert frames[0].jaw_open < 0.2 and frames[-1].jaw_open < 0.05  # starts and ends at rest


def test_bilabials_close_the_lips_between_open_vowels() -> None:
    # "a m a" at a brisk 60 ms per phoneme: the lips must still meet on the m.
    n = int(0.06 * RATE)
    frames = viseme_track([("a", 3 * n), ("m", n), ("a", 3 * n)], RATE, 25.0)
    jaw = np.array([f.jaw_open for f in frames])
    middle = len(jaw) // 2
    assert jaw[middle - 1 : middle + 2].min() < 0.08
    assert jaw[:3].max() > 0.7 and jaw[-3:].max() > 0.7


def test_velars_take_the_shape_of_their_vowels() -> None:
    n = int(0.06 * RATE)
    frames = viseme_track([("a", 3 * n), ("k", n), ("a", 3 * n)], RATE, 25.0)
    assert min(f.jaw_open for f in frames) > 0.5


def test_the_mouth_moves_smoothly_between_frames() -> None:
    text = HELLO * 3 + [("m", 800), ("a", 3000), ("p", 700), ("i", 2000), ("u", 2500)]
    frames = viseme_track(text, RATE, 25.0)
    values = np.stack([f.as_array() for f in frames])
    assert np.abs(np.diff(values, axis=0)).max() < 0.6


def test_streaming_sentences_keeps_the_audio_clock() -> None:
    driver = VisemeDriver(25.0)
    sentences = [HELLO, [*HELLO[:7], ("$", 333)], HELLO]
    total = sum(len(driver.push(s, RATE)) for s in sentences)
    samples = sum(n for s in sentences for _, n in s)
    assert total == int(np.ceil(samples / RATE * 25))


def _speech_like(seconds: float, rate: int) -> np.ndarray:
    """Syllables: 4 Hz bursts of noise with silences, PCM16."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    envelope[t > seconds / 2] = 0.0  # then silence
    return (envelope * rng.normal(0, 0.3, len(t)) * 32767).clip(-32768, 32767).astype(np.int16)


def test_envelope_opens_with_loudness_and_closes_in_silence() -> None:
    pcm = _speech_like(2.0, 16000)
    frames = envelope_track(pcm, 16000, 25.0)
    assert len(frames) == 50
    jaw = np.array([f.jaw_open for f in frames])
    assert jaw[:25].max() > 0.5
    assert jaw[-5:].max() < 0.02


def test_envelope_driver_streams_like_the_whole_clip() -> None:
    pcm = _speech_like(2.0, 22050)
    whole = envelope_track(pcm, 22050, 25.0)
    driver = EnvelopeDriver(25.0)
    pieces: list[MouthParams] = []
    for start in range(0, len(pcm), 777):
        pieces += driver.push(pcm[start : start + 777].tobytes(), 22050)
    assert pieces == whole
    with pytest.raises(ValueError, match="sample rate"):
        driver.push(pcm[:100], 16000)
