"""The client's downmix on real speech: channels that cancel give one channel, with a warning;
normal stereo is averaged as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
from dandelion_client.audio import load_audio
from dandelion_client.downmix import MicDownmix, check_channels, downmix

AUDIO = Path(__file__).resolve().parents[2] / "dandelion" / "eval" / "suites" / "audio"
JFK = AUDIO / "jfk.flac"  # stereo, 44.1 kHz, (nearly) dual mono
ANTIPHASE = AUDIO / "stereo_antiphase.flac"  # = the failed case stereo_antiphase.wav
RATE = 16_000
Frames = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def speech() -> Frames:
    return load_audio(JFK)


def _db(audio: npt.NDArray[np.float32]) -> float:
    return float(10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20))


def _delayed(audio: Frames, ms: float) -> Frames:
    n = round(RATE * ms / 1000)
    return np.concatenate((np.zeros(n, np.float32), audio[: len(audio) - n]))


def test_the_antiphase_case_is_heard_from_one_channel_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stereo, _ = sf.read(ANTIPHASE, dtype="float32", always_2d=True)
    assert np.abs(stereo.mean(axis=1)).max() == 0.0  # what the old downmix sent

    mono = load_audio(ANTIPHASE)

    np.testing.assert_array_equal(mono, stereo[:, 0])  # 16 kHz already: the left channel as is
    warning = capsys.readouterr().err
    assert "stereo_antiphase.flac" in warning
    assert "channel 2 is channel 1 inverted" in warning
    assert "using channel 1 alone" in warning


def test_jfk_stereo_is_averaged_as_before_without_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stereo, rate = sf.read(JFK, dtype="float32", always_2d=True)
    mixed = downmix(stereo, rate)
    assert mixed.channel is None
    np.testing.assert_array_equal(mixed.audio, stereo.mean(axis=1))
    load_audio(JFK)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("name", "right"),
    [
        ("inverted", lambda x: -x),
        ("inverted at half the gain", lambda x: -0.5 * x),
        ("inverted at -20 dB", lambda x: -0.1 * x),
        ("inverted, 0.1 ms late", lambda x: -_delayed(x, 0.1)),
        ("inverted, 0.5 ms late", lambda x: -_delayed(x, 0.5)),
        ("inverted, 1 ms late", lambda x: -_delayed(x, 1.0)),
        ("inverted, 3 ms late, -6 dB", lambda x: -0.5 * _delayed(x, 3.0)),
        ("silent", np.zeros_like),
        ("hiss at -40 dB", lambda x: _noise(len(x), _db(x) - 40)),
    ],
)
def test_cancelling_channels_give_the_loudest_at_its_full_level(
    speech: Frames, name: str, right: object
) -> None:
    assert callable(right)
    stereo = np.stack((speech, right(speech)), axis=1).astype(np.float32)
    mixed = downmix(stereo, RATE)
    assert mixed.channel == 0, name
    np.testing.assert_array_equal(mixed.audio, speech)
    assert _db(stereo.mean(axis=1)) < _db(speech) - 1.0, "the mean did lose level"
    warning = mixed.warning("test.wav")
    assert warning is not None and "using channel 1 alone" in warning


def test_the_louder_channel_is_the_one_used(speech: Frames) -> None:
    stereo = np.stack((-0.3 * speech, speech), axis=1)
    mixed = downmix(stereo, RATE)
    assert mixed.channel == 1
    np.testing.assert_array_equal(mixed.audio, speech)


def test_more_than_two_channels(speech: Frames) -> None:
    channels = np.stack((0.5 * speech, speech, 0.5 * speech, -0.9 * speech), axis=1)
    check = check_channels(channels, RATE)
    assert check is not None and check.cancels
    assert (check.loudest, check.inverted) == (1, 3)


@pytest.mark.parametrize(
    ("name", "right"),
    [
        ("dual mono", lambda x: x),
        ("the same at half the gain", lambda x: 0.5 * x),
        ("the same, 3 ms late (spaced microphones)", lambda x: _delayed(x, 3.0)),
        ("other speech (wide stereo)", lambda x: x[::-1].copy()),
        ("louder noise, nothing of the speech", lambda x: _noise(len(x), _db(x) + 6)),
    ],
)
def test_normal_stereo_is_averaged(speech: Frames, name: str, right: object) -> None:
    assert callable(right)
    stereo = np.stack((speech, right(speech)), axis=1).astype(np.float32)
    mixed = downmix(stereo, RATE)
    assert mixed.channel is None, name
    np.testing.assert_array_equal(mixed.audio, stereo.mean(axis=1))
    assert mixed.warning("test.wav") is None


def test_mono_and_silence_pass_through(speech: Frames) -> None:
    assert downmix(speech, RATE).check is None
    np.testing.assert_array_equal(downmix(speech[:, None], RATE).audio, speech)
    silent = downmix(np.zeros((1000, 2), np.float32), RATE)
    assert silent.channel is None and not silent.audio.any()


def _blocks(frames: Frames, size: int = 320) -> list[Frames]:
    return [frames[i : i + size] for i in range(0, len(frames) - size + 1, size)]


def test_a_live_antiphase_microphone_switches_to_one_channel_once() -> None:
    stereo, rate = sf.read(ANTIPHASE, dtype="float32", always_2d=True)
    warnings: list[str] = []
    mixer = MicDownmix(rate, "the microphone", warnings.append)
    out = [mixer(block) for block in _blocks(stereo)]

    assert mixer.channel == 0 and len(warnings) == 1
    assert "the microphone" in warnings[0] and "using channel 1 alone" in warnings[0]
    # Averaged (silence) until half a second of sound was judged, then channel 1 as it is.
    decided = next(i for i, block in enumerate(out) if block.any())
    assert decided * 320 < 1.5 * rate
    after = np.concatenate(out[decided:])
    start = decided * 320
    np.testing.assert_array_equal(after, stereo[start : start + len(after), 0])


def test_a_live_stereo_microphone_stays_averaged(speech: Frames) -> None:
    stereo = np.stack((speech, _delayed(speech, 0.2)), axis=1)
    warnings: list[str] = []
    mixer = MicDownmix(RATE, "the microphone", warnings.append)
    out = np.concatenate([mixer(block) for block in _blocks(stereo)])
    assert mixer.channel is None and warnings == []
    np.testing.assert_allclose(out, stereo[: len(out)].mean(axis=1), atol=1e-7)


def _noise(samples: int, level_db: float) -> Frames:
    noise = np.random.default_rng(0).standard_normal(samples).astype(np.float32)
    return (noise * np.float32(10 ** (level_db / 20))).astype(np.float32)
