"""The eval bench's audio: edits, sounds, voices and built turns, on real synthesized signals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from dandelion_client.audio import load_audio

from dandelion.eval.build import build_turn
from dandelion.eval.edits import (
    RATE,
    Audio,
    Clip,
    Spans,
    apply_edit,
    deliver,
    find_spans,
    rms,
)
from dandelion.eval.scenario import Edit, MixNoise, SoundKind, SuiteError, Turn
from dandelion.eval.sounds import make_sound
from dandelion.eval.voices import VoiceBank

ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not ESPEAK, reason="espeak-ng is not installed")


def tone(seconds: float, hz: float = 440.0, amplitude: float = 0.3) -> Audio:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def silence(seconds: float) -> Audio:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


def joined(*parts: Audio) -> Audio:
    return np.concatenate(parts)


def noise_maker(mix: MixNoise, samples: int) -> Audio:
    return make_sound(mix.kind, samples, seed=mix.seed)


def edited(clip: Clip, **edit: object) -> Clip:
    return apply_edit(clip, Edit.model_validate(edit), noise_maker)


def s(seconds: float) -> int:
    return round(seconds * RATE)


def close(spans: Spans, expected: list[tuple[float, float]], frames: int = 1) -> bool:
    """Spans equal to `expected` (seconds) within `frames` 10 ms frames."""
    tolerance = frames * RATE // 100
    return len(spans) == len(expected) and all(
        abs(a - s(ea)) <= tolerance and abs(b - s(eb)) <= tolerance
        for (a, b), (ea, eb) in zip(spans, expected, strict=True)
    )


@pytest.fixture(scope="module")
def speech() -> Clip:
    """Two tone 'words' with silence around and between them."""
    audio = joined(silence(0.5), tone(0.6), silence(0.4), tone(0.8, 330.0), silence(0.5))
    return Clip(audio, ((s(0.5), s(1.1)), (s(1.5), s(2.3))))


@pytest.fixture(scope="module")
def voices() -> VoiceBank:
    return VoiceBank()


# find_spans


def test_find_spans_merges_short_gaps_and_drops_blips() -> None:
    audio = joined(
        silence(0.5),
        tone(0.4),
        silence(0.1),  # shorter than 250 ms: one span
        tone(0.3),
        silence(0.6),
        tone(0.03),  # a 30 ms click: dropped
        silence(0.6),
        tone(0.5, amplitude=0.01),  # 30 dB down: still sound
        silence(0.3),
        tone(0.5, amplitude=0.003),  # 40 dB down: silence
    )
    assert close(find_spans(audio), [(0.5, 1.3), (2.53, 3.03)])


def test_find_spans_of_silence_is_empty() -> None:
    assert find_spans(silence(1.0)) == ()
    assert find_spans(silence(0.0)) == ()


# level edits


def test_gain_scales(speech: Clip) -> None:
    quieter = edited(speech, gain_db=-20)
    assert rms(quieter.audio) == pytest.approx(rms(speech.audio) / 10, rel=1e-4)
    assert quieter.spans == speech.spans


def test_clip_drive_caps_peaks_and_raises_loudness(speech: Clip) -> None:
    driven = edited(speech, clip_drive_db=12).audio
    assert np.max(np.abs(driven)) == pytest.approx(1.0)
    normalized = speech.audio / np.max(np.abs(speech.audio))
    # a 12 dB overdriven sine is nearly square: RMS 0.71 -> ~0.95 of full scale
    assert rms(driven, speech.spans) > 1.25 * rms(normalized, speech.spans)


@pytest.mark.parametrize("kind", ["white", "pink", "brown", "music", "hum", "sigh"])
@pytest.mark.parametrize("snr_db", [20.0, 5.0, -5.0])
def test_noise_reaches_the_snr_over_the_speech(speech: Clip, kind: str, snr_db: float) -> None:
    noisy = edited(speech, noise={"kind": kind, "snr_db": snr_db})
    added = noisy.audio - speech.audio
    achieved = 20 * np.log10(rms(speech.audio, speech.spans) / rms(added))
    assert achieved == pytest.approx(snr_db, abs=0.2)
    assert noisy.spans == speech.spans
    assert rms(added[: s(0.5)]) > 0  # under the whole clip, silence included


# delivery format


def spectrum_share(audio: Audio, low: float, high: float) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
    return float(power[(freqs >= low) & (freqs < high)].sum() / power.sum())


def test_telephone_band_limits_and_delivers_8k(tmp_path: Path) -> None:
    white = Clip(make_sound("white", s(2.0)) * np.float32(0.1))
    phone = edited(white, telephone=True)
    assert phone.rate == 8000
    assert spectrum_share(phone.audio, 0, 300) < 1e-6
    assert spectrum_share(phone.audio, 3400, RATE / 2) < 1e-6
    assert spectrum_share(phone.audio, 500, 3200) > 0.9
    path = deliver(phone, tmp_path / "phone.wav")
    assert sf.info(str(path)).samplerate == 8000
    assert abs(len(load_audio(path)) - len(phone.audio)) <= 2


def test_sample_rate_is_delivered_and_read_back_at_16k(speech: Clip, tmp_path: Path) -> None:
    clip = edited(speech, sample_rate=44100)
    path = deliver(clip, tmp_path / "hi.wav")
    assert sf.info(str(path)).samplerate == 44100
    heard = load_audio(path)
    assert abs(len(heard) - len(speech.audio)) <= 2
    assert rms(heard) == pytest.approx(rms(speech.audio), rel=0.01)


@pytest.mark.parametrize(
    ("layout", "heard_level"),
    # The client hears one channel when the two would cancel or one is silent (downmix.py).
    [("antiphase", 1.0), ("left_only", 1.0), ("right_only", 1.0), ("dual_mono", 1.0)],
)
def test_stereo_layouts_as_the_client_hears_them(
    speech: Clip, tmp_path: Path, layout: str, heard_level: float
) -> None:
    path = deliver(edited(speech, stereo=layout), tmp_path / f"{layout}.wav")
    assert sf.info(str(path)).channels == 2
    heard = load_audio(path)
    assert rms(heard) == pytest.approx(heard_level * rms(speech.audio), abs=1e-3)


# timing edits


def test_lead_silence_shifts_everything(speech: Clip) -> None:
    later = edited(speech, lead_silence_s=2.0)
    assert len(later.audio) == len(speech.audio) + s(2.0)
    assert not np.any(later.audio[: s(2.0)])
    assert later.spans == tuple((a + s(2.0), b + s(2.0)) for a, b in speech.spans)


def test_insert_silence_lands_in_the_gap(speech: Clip) -> None:
    longer = edited(speech, insert_silence={"at_s": 1.25, "seconds": 1.0})
    assert len(longer.audio) == len(speech.audio) + s(1.0)
    assert longer.spans == (speech.spans[0], (s(2.5), s(3.3)))
    # the words are untouched: the silence went in between them
    np.testing.assert_array_equal(longer.audio[s(2.5) : s(3.3)], speech.audio[s(1.5) : s(2.3)])


def test_insert_silence_in_the_middle_of_a_sound_splits_its_span() -> None:
    # A tone that dips to 1 % for 20 ms at 1.2 s: the quietest point within 0.3 s of 1.0 s.
    audio = tone(2.0)
    audio[s(1.19) : s(1.21)] *= 0.01
    clip = Clip(audio, ((0, s(2.0)),))
    split = edited(clip, insert_silence={"at_s": 1.0, "seconds": 0.5})
    assert split.spans == ((0, s(1.2)), (s(1.7), s(2.5)))
    assert not np.any(split.audio[s(1.2) : s(1.7)])


def test_reverse_mirrors_spans(speech: Clip) -> None:
    backwards = edited(speech, reverse=True)
    np.testing.assert_array_equal(backwards.audio, speech.audio[::-1])
    n = len(speech.audio)
    assert backwards.spans == ((n - s(2.3), n - s(1.5)), (n - s(1.1), n - s(0.5)))
    assert edited(backwards, reverse=True).spans == speech.spans


# sounds


@pytest.mark.parametrize("kind", ["white", "pink", "brown", "music", "hum", "sigh"])
def test_sounds_are_seeded_and_normalized(kind: SoundKind) -> None:
    sound = make_sound(kind, s(4.0), seed=7)
    assert len(sound) == s(4.0) and sound.dtype == np.float32
    np.testing.assert_array_equal(sound, make_sound(kind, s(4.0), seed=7))
    assert not np.array_equal(sound, make_sound(kind, s(4.0), seed=8))
    assert rms(sound, find_spans(sound, floor_db=60, bridge_s=0.01)) == pytest.approx(1.0, 0.05)


def test_noise_colours_and_sound_bands() -> None:
    share = {k: spectrum_share(make_sound(k, s(3.0)), 0, 500) for k in ("white", "pink", "brown")}
    assert share["white"] < 0.1 < share["pink"] < share["brown"]
    hum = make_sound("hum", s(3.0))
    assert spectrum_share(hum, 110, 190) > 0.5  # the hummed note's fundamental
    assert len(find_spans(hum)) >= 2  # hums with breaths between them
    sigh = make_sound("sigh", s(3.0))
    assert spectrum_share(sigh, 200, 3000) > 0.95


# voices and built turns


def test_voice_errors_say_what_is_wrong(voices: VoiceBank, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SuiteError, match=r"piper:/path/voice\.onnx"):
        voices.speak("hello", "festival:kal")
    with pytest.raises(SuiteError, match="no Piper voice"):
        voices.speak("hello", "piper:/nowhere/voice.onnx")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SuiteError, match="apt-get install espeak-ng"):
        voices.speak("hello", "espeak:en-us")


@needs_espeak
def test_espeak_rejects_unknown_voices(voices: VoiceBank) -> None:
    with pytest.raises(SuiteError, match="refused"):
        voices.speak("hello", "espeak:xx-nowhere")
    with pytest.raises(SuiteError, match="no variant"):
        voices.speak("hello", "espeak:en-us+nobody")


def test_build_say_with_a_pause(voices: VoiceBank, tmp_path: Path) -> None:
    pytest.importorskip("piper")
    turn = Turn(say="Turn on the lights [pause 1.0] in the kitchen, please.")
    built = build_turn(
        turn, folder=tmp_path, default_voice="piper", workdir=tmp_path, voices=voices, name="t"
    )
    assert built.path == tmp_path / "t.wav"
    np.testing.assert_array_equal(built.audio, load_audio(built.path))
    (a0, b0), (a1, b1) = built.spans
    assert a0 == s(0.3) and b1 == len(built.audio) - s(0.3)
    assert a1 - b0 == s(1.0)
    assert b0 - a0 > s(0.5) and b1 - a1 > s(0.5)
    assert voices.speak("in the kitchen, please.", "piper") is voices.speak(
        "in the kitchen, please.", "piper"
    )


@needs_espeak
def test_build_say_with_espeak(voices: VoiceBank, tmp_path: Path) -> None:
    turn = Turn(say="What time is it?", voice="espeak:en-us", speed=1.2)
    built = build_turn(
        turn, folder=tmp_path, default_voice="piper", workdir=tmp_path, voices=voices, name="e"
    )
    ((start, end),) = built.spans
    assert start == s(0.3) and s(0.5) < end - start < s(2.0)
    assert rms(built.audio, built.spans) > 0.02


def test_build_sound_at_its_level(voices: VoiceBank, tmp_path: Path) -> None:
    turn = Turn.model_validate(
        {"sound": {"kind": "pink", "seconds": 2.0, "level_db": -30}, "kind": "non_speech"}
    )
    built = build_turn(
        turn, folder=tmp_path, default_voice="piper", workdir=tmp_path, voices=voices, name="n"
    )
    assert built.spans == ((0, s(2.0)),)
    assert 20 * np.log10(rms(built.audio)) == pytest.approx(-30.0, abs=0.1)


def test_build_file_untouched_or_edited(voices: VoiceBank, tmp_path: Path) -> None:
    words = joined(silence(0.4), tone(0.5), silence(0.6))
    source = tmp_path / "stereo.flac"
    at_48k = np.repeat(words, 3)  # the same 1.5 s, held for three samples each at 48 kHz
    sf.write(str(source), np.stack((at_48k, at_48k), axis=1), 48000)
    as_is = build_turn(
        Turn(file="stereo.flac"),
        folder=tmp_path,
        default_voice="piper",
        workdir=tmp_path / "out",
        voices=voices,
        name="f",
    )
    assert as_is.path == source
    assert close(as_is.spans, [(0.4, 0.9)])
    edited_turn = Turn.model_validate(
        {"file": str(source), "edits": [{"stereo": "antiphase"}, {"lead_silence_s": 1.0}]}
    )
    built = build_turn(
        edited_turn,
        folder=Path("/"),
        default_voice="piper",
        workdir=tmp_path / "out",
        voices=voices,
        name="g",
    )
    assert built.path == tmp_path / "out" / "g.wav"
    assert rms(built.audio) > 0.05  # antiphase: the client hears one channel, not silence
    assert close(built.spans, [(1.4, 1.9)])


def test_build_file_that_is_not_audio(voices: VoiceBank, tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(SuiteError, match="not an audio file"):
        build_turn(
            Turn(file="notes.wav"),
            folder=tmp_path,
            default_voice="piper",
            workdir=tmp_path,
            voices=voices,
            name="x",
        )
