"""Live mode's echo canceller, the real one (WebRTC AEC3 from LiveKit's SDK), on real speech.

The speaker plays JFK at the reply's rate (22.05 kHz, Piper's); the room brings it back to the
16 kHz microphone later and quieter. Both sides go in as the sound cards' callbacks hand them
over, 20 ms at a time, the speaker's first.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soxr
from dandelion_client.audio import from_pcm16, load_audio, to_pcm16
from dandelion_client.echo_cancel import EchoCanceller, check_dependencies

from dandelion.errors import BackendUnavailableError

JFK = Path(__file__).resolve().parents[2] / "dandelion" / "eval" / "suites" / "audio" / "jfk.flac"
MIC_RATE = 16_000
SPEAKER_RATE = 22_050
BLOCK_S = 0.02
CONVERGED_S = 3.0  # the canceller has learnt the room by then
Audio = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def far() -> Audio:
    """What the speaker plays, at the microphone's rate (the room's view of it)."""
    return load_audio(JFK, MIC_RATE)


def _db(audio: Audio) -> float:
    return float(10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20))


def _echo(far: Audio, delay_ms: float, gain_db: float) -> Audio:
    delay = round(MIC_RATE * delay_ms / 1000)
    late = np.concatenate((np.zeros(delay, np.float32), far[: len(far) - delay]))
    return (late * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def _cancel(played: Audio, mic: Audio, latency_ms: float = 0.0) -> Audio:
    """`played` (at the mic's rate) to the speaker at its own rate, `mic` through the canceller,
    which is told the sound cards' latencies add up to `latency_ms`."""
    canceller = EchoCanceller(MIC_RATE, SPEAKER_RATE, latency_ms)
    speaker = soxr.resample(played, MIC_RATE, SPEAKER_RATE).astype(np.float32)
    speaker_block, mic_block = round(SPEAKER_RATE * BLOCK_S), round(MIC_RATE * BLOCK_S)
    out = bytearray()
    for i in range(len(mic) // mic_block):
        canceller.render(to_pcm16(speaker[i * speaker_block : (i + 1) * speaker_block]))
        out += canceller.capture(to_pcm16(mic[i * mic_block : (i + 1) * mic_block]))
    return from_pcm16(bytes(out))


def _match(out: Audio, reference: Audio, max_lag_ms: float = 20.0) -> tuple[float, float]:
    """How much of `reference` is in `out`: the correlation of their magnitude spectrograms (32 ms
    frames; phase aside, which the canceller's filters turn), and out's level minus reference's
    in dB, `out` aligned first (it may lag by up to `max_lag_ms`)."""
    size = 1 << (len(out) + len(reference)).bit_length()
    lags = np.fft.irfft(np.fft.rfft(out, size) * np.conj(np.fft.rfft(reference, size)), size)
    lag = int(np.argmax(lags[: round(MIC_RATE * max_lag_ms / 1000)]))
    aligned = out[lag : lag + len(reference)]
    reference = reference[: len(aligned)]
    similarity = np.corrcoef(_spectrogram(aligned).ravel(), _spectrogram(reference).ravel())[0, 1]
    return float(similarity), _db(aligned) - _db(reference)


def _spectrogram(audio: Audio, frame: int = 512) -> npt.NDArray[np.float64]:
    hop = frame // 2
    count = (len(audio) - frame) // hop
    frames = np.stack([audio[i * hop : i * hop + frame] for i in range(count)])
    return np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1))


@pytest.mark.parametrize(("delay_ms", "gain_db"), [(30, -10), (50, -15), (80, -20)])
def test_the_reply_echo_is_removed_once_converged(far: Audio, delay_ms: int, gain_db: int) -> None:
    mic = _echo(far, delay_ms, gain_db)
    out = _cancel(far, mic)
    start = round(CONVERGED_S * MIC_RATE)
    reduction = _db(mic[start : len(out)]) - _db(out[start:])
    # Measured 52-54 dB (livekit 1.2.1): what is left is far below any speech detector.
    assert reduction > 40.0, f"echo only {reduction:.1f} dB down"


def test_sound_cards_latency_beyond_aec3s_reach_is_made_up_for(far: Audio) -> None:
    """600 ms from speaker callback to microphone callback (AEC3 alone reaches ~400 ms; measured
    0.8 dB without the latency told): the speaker's frames are held back to bring it in reach."""
    mic = _echo(far, 600, -10)
    out = _cancel(far, mic, latency_ms=580)
    start = round((CONVERGED_S + 1.0) * MIC_RATE)
    assert _db(mic[start : len(out)]) - _db(out[start:]) > 40.0  # measured 66 dB


def test_near_end_speech_passes_while_the_reply_plays(far: Audio) -> None:
    """Double talk: the person speaks (JFK backwards) over the reply, after convergence."""
    echo = _echo(far, 50, -15)
    near = np.zeros_like(far)
    talk = slice(round(6.0 * MIC_RATE), round(10.0 * MIC_RATE))
    near[talk] = far[::-1][talk] * np.float32(10 ** (-3 / 20))
    out = _cancel(far, echo + near)

    similarity, level_db = _match(out[talk.start :], near[talk])
    # Measured 0.985 and -0.6 dB (the echo alone scores 0.00 against this speech).
    assert similarity > 0.9
    assert abs(level_db) < 3.0
    # And the echo alone, before the person spoke, was still removed.
    before = slice(round(CONVERGED_S * MIC_RATE), talk.start)
    assert _db(echo[before]) - _db(out[before]) > 40.0


def test_the_microphone_passes_when_nothing_plays(far: Audio) -> None:
    spoken = far * np.float32(0.5)
    out = _cancel(np.zeros_like(far), spoken)
    similarity, level_db = _match(out, spoken[: len(out) - MIC_RATE // 50])
    assert similarity > 0.98  # measured 0.9997
    assert abs(level_db) < 1.0


def test_frames_are_whole_10_ms_and_the_rest_waits(far: Audio) -> None:
    canceller = EchoCanceller(MIC_RATE, MIC_RATE)
    pcm = to_pcm16(far[:250])  # 15.6 ms: one frame now, the rest with the next call
    assert len(canceller.capture(pcm)) == 160 * 2
    assert len(canceller.capture(to_pcm16(far[250:320]))) == 160 * 2
    with pytest.raises(ValueError, match="10 ms"):
        EchoCanceller(22_050, MIC_RATE)


def test_a_missing_library_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "livekit", None)  # import livekit -> ImportError
    with pytest.raises(BackendUnavailableError, match=r"dandelion\[client\].*--no-echo-cancel"):
        check_dependencies()
