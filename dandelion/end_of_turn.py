"""End of turn by meaning: how much silence ends a turn, given the words so far. Pure.

At the first pause the session transcribes the audio (the speculative reply's transcript); the
words then say how long to wait before taking the turn:

- *complete* (a question, or the LLM judges the message finished): a short silence;
- *incomplete* (it ends on "for", "the", "and", "um", a comma...): a long one, so a speaker who
  stops to think is not cut off;
- *unsure*: in between; *unknown* (no transcript yet): the longest wait for one to arrive.

Two signals: `lexical_completeness` (the transcript's last word and punctuation, microseconds,
decisive only on plainly unfinished endings and on questions) and the resident LLM's
probability that the user's message ends here (`Stages.end_of_turn_probability`, the approach of
LiveKit's turn detector), which arrives a little later. `Completeness.combine` merges them.
Eagerness (low / medium / high, as OpenAI's semantic_vad) picks the silences.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal

Eagerness = Literal["low", "medium", "high"]


class Completeness(Enum):
    UNKNOWN = "unknown"
    INCOMPLETE = "incomplete"
    UNSURE = "unsure"
    COMPLETE = "complete"

    def combine(self, llm_probability: float | None) -> Completeness:
        """Refine a lexical judgement with the LLM's end-of-turn probability (None: no score).

        A plainly unfinished ending stays incomplete whatever the LLM says; a question stays
        complete unless the LLM is sure it goes on.
        """
        if llm_probability is None or self is Completeness.INCOMPLETE:
            return self
        if llm_probability >= LLM_COMPLETE:
            return Completeness.COMPLETE
        if llm_probability <= LLM_INCOMPLETE:
            return Completeness.INCOMPLETE
        return self


# The LLM's P(end of message) above which a turn is complete, and below which it is not.
# Measured on Qwen2.5-1.5B (docs/evaluation.md, "End of turn: signals measured"): at or above
# 0.5, 58% of complete turns and 6% of incomplete ones; below 0.02, 8% and 80%.
LLM_COMPLETE = 0.5
LLM_INCOMPLETE = 0.02

# Silence (ms) that ends a turn, by eagerness and completeness. People pause up to ~1.5 s to
# think inside a sentence whose words so far may look finished ("And so, my fellow Americans,
# [1.1 s] ask not ..."; "I need eggs, flour, [1.5 s] and sugar", transcribed "I need eggs.
# Flower."), so at medium eagerness an unsure turn waits longer than that, and an unfinished
# clause ("If it rains tomorrow, ...") 2.5 s.
_SILENCE_MS: dict[Eagerness, dict[Completeness, int]] = {
    "low": {
        Completeness.COMPLETE: 500,
        Completeness.UNSURE: 2_200,
        Completeness.INCOMPLETE: 3_500,
        Completeness.UNKNOWN: 1_800,
    },
    "medium": {
        Completeness.COMPLETE: 200,
        Completeness.UNSURE: 1_600,
        Completeness.INCOMPLETE: 2_500,
        Completeness.UNKNOWN: 1_200,
    },
    "high": {
        Completeness.COMPLETE: 100,
        Completeness.UNSURE: 800,
        Completeness.INCOMPLETE: 1_500,
        Completeness.UNKNOWN: 800,
    },
}
# A complete statement after this much speech may be one sentence of several (a monologue,
# sentence pauses 0.3-0.6 s): it ends after `_LONG_STATEMENT_MS` at least. A question ends at
# once all the same.
LONG_SPEECH_MS = 6_000
_LONG_STATEMENT_MS: dict[Eagerness, int] = {"low": 900, "medium": 600, "high": 300}


def required_silence_ms(
    completeness: Completeness, eagerness: Eagerness, speech_ms: int = 0, question: bool = False
) -> int:
    """The silence (ms) that ends a turn judged `completeness` after `speech_ms` of speech."""
    table = _SILENCE_MS[eagerness]
    silence = table[completeness]
    if completeness is Completeness.COMPLETE and speech_ms >= LONG_SPEECH_MS and not question:
        silence = max(silence, _LONG_STATEMENT_MS[eagerness])
    return silence


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words no finished English turn ends on, even a question: articles, possessives,
# conjunctions, fillers.
_NEVER_LAST = _word_set(
    "a an the my your his her its our their every "
    "and or but nor because if when while although though unless whether "
    "um uh er erm hmm uhm"
)
# Words a finished statement seldom ends on (prepositions, auxiliaries, subject pronouns); a
# question may ("What are you thinking of?"), and Whisper marks questions.
_SELDOM_LAST = _word_set(
    "this these those some any each no to for of in on at by with from into onto about as "
    "than like between through over under after before during without within toward towards "
    "via per so since until i you he she we they i'm you're we're they're it's there's is "
    "are was were be been am will would can could should shall may might must do does did "
    "have has had not don't can't won't"
)
_WORD = re.compile(r"[a-z']+")


def lexical_completeness(transcript: str) -> Completeness:
    """Judge a transcript from its last word and punctuation alone.

    Returns INCOMPLETE for a trailing comma, dash, ellipsis or a last word a turn does not end
    on, COMPLETE for a question or exclamation (UNSURE if its last word is one a statement
    seldom ends on), UNSURE otherwise, UNKNOWN for no words.
    """
    text = transcript.strip().lower()
    words = _WORD.findall(text)
    if not words:
        return Completeness.UNKNOWN
    last = words[-1]
    if text.endswith((",", "-", "...", "…", ":")) or last in _NEVER_LAST:
        return Completeness.INCOMPLETE
    if last in _SELDOM_LAST:
        # Whisper writes "?" on a question cut short too ("Can you tell me the way to?").
        return Completeness.UNSURE if text.endswith(("?", "!")) else Completeness.INCOMPLETE
    return Completeness.COMPLETE if text.endswith(("?", "!")) else Completeness.UNSURE
