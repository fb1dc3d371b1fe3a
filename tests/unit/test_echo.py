"""EchoReference on real speech: the reply's echo is recognised, a person over it is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from dandelion.echo import ECHO_LIKENESS, Audio, EchoReference

JFK = Path(__file__).parents[2] / "dandelion" / "eval" / "suites" / "audio" / "jfk.flac"
OUT_RATE = 22_050  # the reply's rate (Piper)
WINDOW = 4_096  # 256 ms of microphone at 16 kHz


@pytest.fixture(scope="module")
def speech() -> tuple[Audio, Audio]:
    """jfk.flac at 22.05 kHz (the "reply") and at 16 kHz (as a microphone hears it)."""
    audio, rate = sf.read(JFK, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    return (
        soxr.resample(mono, rate, OUT_RATE).astype(np.float32),
        soxr.resample(mono, rate, 16_000).astype(np.float32),
    )


def reference(reply: Audio) -> EchoReference:
    echo = EchoReference(OUT_RATE)
    pcm = (reply * 32767).astype("<i2").tobytes()
    for start in range(0, len(pcm), 8_820):  # sent in 200 ms frames
        echo.add(pcm[start : start + 8_820])
    return echo


@pytest.mark.parametrize("gain_db", [-35, -20, 0, 6])
@pytest.mark.parametrize("delay_ms", [0, 80, 300])
def test_the_reply_coming_back_is_echo(
    speech: tuple[Audio, Audio], gain_db: int, delay_ms: int
) -> None:
    reply, heard = speech
    echo = reference(reply)
    rng = np.random.default_rng(0)
    for played_s in (1.0, 3.5, 7.0):
        end = int((played_s - delay_ms / 1000) * 16_000)
        mic = heard[end - WINDOW : end] * 10 ** (gain_db / 20)
        mic = mic + rng.normal(0, 0.0001, WINDOW).astype(np.float32)  # -80 dBFS of room noise
        assert echo.likeness(mic, int(played_s * 16_000)) >= ECHO_LIKENESS


def test_a_person_over_the_echo_is_not_echo(speech: tuple[Audio, Audio]) -> None:
    reply, heard = speech
    echo = reference(reply)
    person = heard[::-1].copy()  # other speech, as loud
    for played_s in (2.0, 5.0):
        end = int(played_s * 16_000)
        mic = person[end - WINDOW : end] + 0.1 * heard[end - WINDOW : end]  # echo at -20 dB
        assert echo.likeness(mic, end) < ECHO_LIKENESS


def test_unrelated_speech_and_silence_are_not_echo(speech: tuple[Audio, Audio]) -> None:
    reply, heard = speech
    echo = reference(reply[: len(reply) // 2])
    late = heard[-WINDOW:]  # words the reply never said
    assert echo.likeness(late, 5 * 16_000) < ECHO_LIKENESS
    assert echo.likeness(np.zeros(WINDOW, dtype=np.float32), 5 * 16_000) == 0.0
    assert EchoReference(OUT_RATE).likeness(late, 0) == 0.0  # nothing sent yet
