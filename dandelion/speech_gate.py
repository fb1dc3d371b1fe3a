"""Whether a transcript is speech to answer: Whisper's own confidence and a non-word check.

Pure: a `Transcript` and `SpeechGateSettings` in, a `Verdict` out. In order:

1. no_speech: no letter or digit, or Whisper's P(no speech) at `no_speech_prob` or above.
2. non_word: nothing but fillers ("uh", "hmm", "ah"), a phrase Whisper makes up from noise
   ("Thank you.", "you") decoded without confidence, or a sound that decodes better played
   backwards than forwards (speech in reverse: words, but not said).
3. low_confidence: the decode looped (compression ratio).
4. other_language: identified as another language with at least `other_language_probability`
   (not for a short answer: one word is too short to identify).
5. accepted: decoded with confidence (`min_logprob`), or less sure (`min_logprob_english`)
   but identified as English or a common short answer ("Yes.", "Sure.").
6. otherwise other_language when identified as another language, else low_confidence.

The thresholds and the measurements behind them: docs/speech-gate.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from dandelion.backends.asr.base import Transcript
from dandelion.config import SpeechGateSettings

Reason = Literal["no_speech", "low_confidence", "non_word", "other_language"]

# One word of hesitation or a sound, however drawn out: "uh", "umm", "hmm", "mhm", "aah", "oh",
# "er", "huh", "haha" ("uh-huh" is two). Whisper writes these for hums, sighs and breaths.
_FILLER = re.compile(r"(?:a+h*|o+h*|u+h*|u+m+|h*m+(?:h+m+)?|e+r+m*|e+h+|h+u+h+|(?:h+a+)+h*)")
# What Whisper writes for silence and noise, learnt from subtitles. Only below
# `hallucination_max_logprob`: a user who says "Thank you." is decoded with confidence.
HALLUCINATIONS = frozenset(
    {"you", "thank you", "thanks for watching", "thank you for watching", "bye"}
)
# Short answers a voice assistant hears most. Under half a second of speech gives language
# identification too little to go on (espeak's "Sure." came out Chinese 0.19, English 0.10), so
# these are accepted on `min_logprob_english` alone, whatever the language check said.
SHORT_ANSWERS = frozenset(
    {"yes", "yeah", "no", "nope", "okay", "ok", "sure", "right", "thanks", "thank you"}
    | {"stop", "hello", "hi", "what", "why"}
)
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: Reason | None = None  # None: accepted
    detail: str = ""  # the signals that decided, for logs

    @property
    def accepted(self) -> bool:
        return self.reason is None


ACCEPTED = Verdict()


def judge(transcript: Transcript, settings: SpeechGateSettings) -> Verdict:
    t, s = transcript, settings
    if not s.enabled:
        return ACCEPTED
    words = _WORD.findall(t.text.lower())
    phrase = " ".join(words)
    if not words:
        return Verdict("no_speech", "no word in the transcript")
    if t.no_speech_prob >= s.no_speech_prob:
        return Verdict("no_speech", _signals(t))
    if all(_FILLER.fullmatch(word) for word in words):
        return Verdict("non_word", f"fillers only: {t.text!r}")
    if phrase in HALLUCINATIONS and t.avg_logprob < s.hallucination_max_logprob:
        return Verdict("non_word", f"a phrase Whisper makes up from noise: {t.text!r}")
    if t.reversed_logprob is not None and t.reversed_logprob >= t.avg_logprob:
        return Verdict(
            "non_word",
            f"decoded better played backwards (avg_logprob {t.reversed_logprob:.2f} reversed, "
            f"{t.avg_logprob:.2f} as heard): speech in reverse",
        )
    if t.compression_ratio > s.max_compression_ratio:
        return Verdict("low_confidence", _signals(t))
    short_answer = phrase in SHORT_ANSWERS
    other = t.language is not None and t.language != "en"
    probability = t.language_probability or 0.0
    if other and probability >= s.other_language_probability and not short_answer:
        return Verdict("other_language", _signals(t))
    if t.avg_logprob >= s.min_logprob:
        return ACCEPTED
    english = t.language == "en" and probability >= s.min_english_probability
    if (english or short_answer) and t.avg_logprob >= s.min_logprob_english:
        return ACCEPTED
    return Verdict("other_language" if other else "low_confidence", _signals(t))


def spoken_reply(verdict: Verdict, settings: SpeechGateSettings) -> str | None:
    """What to say to a rejected utterance: None to stay silent (accepted, `action` "ignore",
    or nothing was said to answer: no speech, fillers alone)."""
    if verdict.reason is None or settings.action == "ignore":
        return None
    if verdict.reason == "other_language":
        return settings.english_only_reply
    if verdict.reason == "low_confidence":
        return settings.not_understood_reply
    return None


def _signals(t: Transcript) -> str:
    language = f"{t.language} {t.language_probability or 0.0:.2f}" if t.language else "unknown"
    return (
        f"no_speech_prob {t.no_speech_prob:.2f}, avg_logprob {t.avg_logprob:.2f}, "
        f"compression_ratio {t.compression_ratio:.2f}, language {language}"
    )
