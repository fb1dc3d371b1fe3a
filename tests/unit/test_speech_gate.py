"""The speech gate on small Transcript values, at the default thresholds.

The signal values come from measurements (docs/speech-gate.md): what tiny.en gave a sigh, a hum,
noise, Spanish and German, and English questions down to one word.
"""

from __future__ import annotations

import pytest

from dandelion.backends.asr.base import Transcript
from dandelion.config import AppSettings, SpeechGateSettings
from dandelion.speech_gate import Verdict, judge, spoken_reply

GATE = SpeechGateSettings()


def verdict(text: str, **signals: float | str | None) -> str:
    reason = judge(Transcript(text, **signals), GATE).reason  # type: ignore[arg-type]
    return reason or "accept"


def test_confident_english_is_accepted_without_a_language() -> None:
    assert verdict("What time is it?", no_speech_prob=0.10, avg_logprob=-0.07) == "accept"
    assert verdict("Yes.", no_speech_prob=0.20, avg_logprob=-0.51) == "accept"
    # A real "Thank you." is decoded with confidence: not taken for the hallucination.
    assert verdict("Thank you.", no_speech_prob=0.45, avg_logprob=-0.17) == "accept"


def test_a_default_transcript_is_accepted() -> None:
    # Fake stages return Transcript("text"): its defaults are a confident decode.
    assert judge(Transcript("Tips please."), GATE).accepted


def test_unsure_english_needs_the_language_check_or_a_short_answer() -> None:
    unsure = {"no_speech_prob": 0.17, "avg_logprob": -0.85}
    question = "Who painted the Mona Lisa?"
    assert verdict(question, **unsure, language="en", language_probability=0.76) == "accept"
    assert verdict(question, **unsure, language="en", language_probability=0.30) == (
        "low_confidence"
    )
    assert verdict(question, **unsure) == "low_confidence"  # no language identified
    # One word is too short to identify: a common answer passes on its confidence alone.
    assert verdict("Sure.", **unsure, language="zh", language_probability=0.19) == "accept"
    assert verdict("Sure.", avg_logprob=-0.97) == "low_confidence"


def test_the_sigh_case_is_not_answered() -> None:
    # nonword_sigh.wav: "Okay, take part." from a sigh, identified as Chinese.
    sigh = Transcript("Okay, take part.", 0.35, -0.86, 0.67, "zh", 0.38)
    assert not judge(sigh, GATE).accepted


@pytest.mark.parametrize(
    ("text", "no_speech_prob", "avg_logprob"),
    [
        ("You", 0.75, -1.59),  # white noise
        ("I'm not going to be able to do that.", 0.72, -1.72),  # white noise
        ("Thank you.", 0.78, -0.43),  # babble, decoded with some confidence
        ("", 0.10, -0.10),
        ("...", 0.30, -0.50),
    ],
)
def test_noise_is_no_speech(text: str, no_speech_prob: float, avg_logprob: float) -> None:
    assert verdict(text, no_speech_prob=no_speech_prob, avg_logprob=avg_logprob) == "no_speech"


@pytest.mark.parametrize(
    "text", ["Ah!", "Aaaah!", "Mm", "Oh", "Hmm...", "Uh-huh.", "Um, uh", "Ha ha"]
)
def test_fillers_alone_are_non_words(text: str) -> None:
    assert verdict(text, no_speech_prob=0.5, avg_logprob=-1.3) == "non_word"
    assert verdict(text) == "non_word"  # however confident


def test_fillers_around_words_are_speech() -> None:
    assert verdict("Um, what's the weather like tomorrow?", avg_logprob=-0.13) == "accept"
    assert verdict("Oh no.", avg_logprob=-0.3) == "accept"


def test_a_made_up_phrase_is_a_non_word_only_when_unsure() -> None:
    assert verdict("Thanks for watching!", avg_logprob=-0.6) == "non_word"
    assert verdict("Thanks for watching!", avg_logprob=-0.2) == "accept"


def test_other_languages() -> None:
    # Spanish from tiny.en: an English sentence nobody said, unsure, identified as Spanish.
    spanish = Transcript("Maybe we'll see if we can do it.", 0.46, -1.65, 0.84, "es", 0.99)
    assert judge(spanish, GATE).reason == "other_language"
    # Identified with little certainty: still another language once the decode is unsure.
    german = Transcript("We share this test.", 0.49, -1.10, 0.70, "he", 0.45)
    assert judge(german, GATE).reason == "other_language"
    # A multilingual model forced to English translates with confidence: the language decides.
    translated = Transcript("I would like a table.", 0.05, -0.30, 0.9, "es", 0.97)
    assert judge(translated, GATE).reason == "other_language"


def test_speech_played_backwards_is_a_non_word() -> None:
    # Measured: reversed speech decodes with more confidence when played backwards again (it
    # is then speech), forward speech with less; the gap was at least 0.26 both ways.
    Signals = dict[str, float | str | None]
    backwards: Signals = {"no_speech_prob": 0.38, "language": "la", "language_probability": 0.41}
    assert verdict("No, no, no,", avg_logprob=-0.48, reversed_logprob=-0.14, **backwards) == (
        "non_word"
    )
    sure_english: Signals = {"language": "en", "language_probability": 0.87}
    heard: Signals = {"avg_logprob": -0.59, "reversed_logprob": -0.13, **sure_english}
    assert verdict("So last of me now", **heard) == "non_word"
    assert verdict("So last of me now", avg_logprob=-0.59, **sure_english) == "accept"  # unchecked
    forward: Signals = {"no_speech_prob": 0.14, "language": "en", "language_probability": 0.54}
    assert verdict("explain how airplanes fly", avg_logprob=-0.62, reversed_logprob=-1.69,
                   **forward) == "accept"  # fmt: skip


def test_a_looping_decode_is_low_confidence() -> None:
    loop = "You will be very very very very very very very very very very very very"
    assert verdict(loop, avg_logprob=-0.4, compression_ratio=3.1) == "low_confidence"


def test_disabled_accepts_everything() -> None:
    off = SpeechGateSettings(enabled=False)
    assert judge(Transcript("Ah!", no_speech_prob=0.9, avg_logprob=-2.0), off).accepted


def test_what_to_say_follows_the_action() -> None:
    apologize = SpeechGateSettings(action="apologize")
    said = {
        reason: spoken_reply(Verdict(reason), apologize)
        for reason in ("no_speech", "non_word", "low_confidence", "other_language")
    }
    assert said == {
        "no_speech": None,
        "non_word": None,
        "low_confidence": "Sorry, I didn't catch that.",
        "other_language": "Sorry, I only understand English.",
    }
    assert spoken_reply(Verdict("other_language"), GATE) is None  # "ignore", the default
    assert spoken_reply(Verdict(), apologize) is None


def test_the_gate_is_in_the_app_settings() -> None:
    settings = AppSettings.model_validate({"speech_gate": {"action": "apologize"}})
    assert settings.speech_gate.action == "apologize"
    assert settings.speech_gate.min_logprob == GATE.min_logprob


def test_transcript_crosses_a_ray_hop_as_plain_values() -> None:
    transcript = Transcript("Hola.", 0.3, -1.2, 0.5, "es", 0.9, -1.6)
    plain = {**transcript.to_dict(), "seconds": 0.1}
    assert all(isinstance(v, str | float) for v in plain.values())
    assert Transcript.from_dict(plain) == transcript
