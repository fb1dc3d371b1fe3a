"""Scoring one scenario's timeline against what its turns expect. Pure: no I/O, no clock.

Definitions (docs/evaluation.md, "Metrics", says the same in prose):
- Each server turn (`input_audio.speech_stopped`) belongs to the utterance whose sound it
  overlaps most on the stream (with `TOLERANCE_MS` either side); a turn that overlaps none is a
  *phantom* turn (echo, noise between turns).
- An utterance's *final* turn is its turn that ends last. Turns that end more than
  `TOLERANCE_MS` before the utterance's sound ends cut it: each is a *false cut-in*.
- *Endpoint delay*: the final turn's `speech_stopped` at the client minus the capture time of
  the utterance's last sound. *Voice-to-voice*: its first reply audio at the client minus that
  same moment. Neither is measured when the final turn ends before the utterance does.
- *Barge-in time to silence*: the capture time of an interrupting utterance's first sound to the
  moment the interrupted reply stopped playing at the client (its pause, when
  `response.audio.paused` came before `response.interrupted`: `Playback.end_t`).
- A *false barge-in*: a `response.interrupted` on an utterance's final reply that the scenario
  does not expect to be interrupted. Replies to cut-in fragments do not count (the cut-in does).
  A pause that is resumed is no interruption: the reply plays on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cache

from dandelion.eval.scenario import Scenario, Turn, dated
from dandelion.eval.timeline import ServerTurn, Timeline, UtteranceRecord, server_turns

TOLERANCE_MS = 300
"""Slack between where the client's speech lies and where the server's VAD puts it (32 ms
frames, hysteresis, soft word endings)."""

SPOKEN_SYMBOLS = {
    "asterisk": r"\basterisks?\b",
    "hash": r"\bhash(?:es|tag|tags)?\b",
    "pound sign": r"\bpound signs?\b",
    "number sign": r"\bnumber signs?\b",
    "underscore": r"\bunderscores?\b",
    "backtick": r"\bback ?ticks?\b",
    "tilde": r"\btildes?\b",
    "caret": r"\bcarets?\b",
    "vertical bar": r"\bvertical bars?\b",
    "bracket": r"\b(?:open|close|left|right) (?:square )?brackets?\b",
    "slash slash": r"\bslash slash\b",
    "dollar before the number": r"\bdollars? (?:sign )?(?:\d|zero|one|two|three|four|five|six|"
    r"seven|eight|nine|ten|twenty|thirty|forty|fifty|hundred)",
}
"""Markup and symbols read aloud, as the bench's ASR writes them: a voice should never say these
(a written "$4" must be spoken "four dollars", not "dollar four")."""


@cache
def _normalizer(english: bool) -> Callable[[str], str]:
    from whisper_normalizer.basic import BasicTextNormalizer
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer() if english else BasicTextNormalizer()  # type: ignore[no-any-return]


def normalize(text: str, english: bool = True) -> str:
    """Whisper's English normalizer (the field's standard for WER): lower case, no punctuation,
    numbers as digits ("four" and "4" agree, "8.5 million" is "8500000"), fillers ("um", "uh")
    removed, spellings unified. `english=False`: Whisper's basic one (lower case, no
    punctuation, words left as they are)."""
    return " ".join(str(_normalizer(english)(text)).split())


_DIGIT_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
}


def wer_words(text: str) -> list[str]:
    """The words WER compares: `normalize`d, then a number said in pieces made one, as the
    normalizer makes it from words ("five five five one two three four" is "5551234"; an ASR's
    "555-1234" or "5 5 5. 1 2 3 4" become the same), and its stray "one" a digit."""
    merged: list[str] = []
    for word in normalize(text).split():
        word = _DIGIT_WORDS.get(word, word)
        if word.isdigit() and merged and merged[-1].isdigit():
            merged[-1] += word
        else:
            merged.append(word)
    return merged


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words), over `wer_words`."""
    import jiwer

    ref, hyp = wer_words(reference), wer_words(hypothesis)
    if not ref:
        return len(hyp), 0
    if not hyp:
        return len(ref), len(ref)
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return out.substitutions + out.deletions + out.insertions, len(ref)


def contains(text: str, phrase: str) -> bool:
    """`phrase` appears in `text` as whole words, after either normalizer on both ("four"
    matches "4" through the English one, "million" matches "8.5 million" through the basic)."""
    for english in (True, False):
        needle = normalize(phrase, english)
        if needle and f" {needle} " in f" {normalize(text, english)} ":
            return True
    return False


def spoken_symbols(text: str) -> list[str]:
    """The symbols in SPOKEN_SYMBOLS that `text` (a transcript of reply audio) reads aloud."""
    lowered = text.lower()
    found = []
    for name, pattern in SPOKEN_SYMBOLS.items():
        found += [name] * len(re.findall(pattern, lowered))
    return found


@dataclass
class TurnScore:
    """One scenario turn (an utterance) and what the server made of it."""

    index: int
    kind: str
    ignored: bool = False
    """Expected to be ignored: no turn, no reply (backchannels, non-speech)."""
    server_turns: list[int] = field(default_factory=list)
    transcript: str = ""
    word_errors: int | None = None
    reference_words: int | None = None
    cut_ins: int = 0
    missed: bool = False
    endpoint_delay_s: float | None = None
    voice_to_voice_s: float | None = None
    reply: str = ""
    reply_s: float | None = None
    """Seconds of audio of the final reply, when it completed."""
    too_long: bool = False
    """The reply lasted longer than `max_reply_s`."""
    interrupted: bool = False
    barge_in_missed: bool = False
    """Its reply should have been cut by the next turn and was not."""
    barge_in_s: float | None = None
    """Its reply was cut by the next turn: that turn's first sound to the reply's silence."""
    false_barge_in: str | None = None
    """What cut its reply when nothing should have: the kind of turn sounding then
    (backchannel, non_speech, speech), echo, or other."""
    answered: bool = False
    correct: bool | None = None
    symbols: list[str] = field(default_factory=list)
    server_timings: dict[str, float] = field(default_factory=dict)
    """The server's timings (ms) of the reply whose voice-to-voice was measured."""
    failures: list[str] = field(default_factory=list)

    @property
    def wer(self) -> float | None:
        if self.word_errors is None or not self.reference_words:
            return None
        return self.word_errors / self.reference_words


@dataclass
class ScenarioScore:
    name: str
    tags: list[str]
    turns: list[TurnScore]
    phantom_turns: int = 0
    phantom_answered: int = 0
    failures: list[str] = field(default_factory=list)
    """Scenario-wide failures (phantom turns answered, a reply that never ended)."""
    aborted: str | None = None
    """The run stopped before the scenario's end: not scored (timeline.py, `aborted`)."""

    @property
    def passed(self) -> bool:
        return not self.aborted and not self.failures and not any(t.failures for t in self.turns)

    def all_failures(self) -> list[str]:
        if self.aborted:
            return [f"not run to its end: {self.aborted}"]
        turn_failures = [f"turn {t.index + 1}: {f}" for t in self.turns for f in t.failures]
        return turn_failures + self.failures


def _overlap(turn: ServerTurn, utterance: UtteranceRecord) -> int:
    lo = max(turn.audio_start_ms, utterance.sound_start_ms - TOLERANCE_MS)
    hi = min(turn.audio_end_ms, utterance.sound_end_ms + TOLERANCE_MS)
    return hi - lo


def assign_turns(
    turns: list[ServerTurn], utterances: list[UtteranceRecord]
) -> tuple[dict[int, list[ServerTurn]], list[ServerTurn]]:
    """Each server turn to the utterance it overlaps most (by utterance index); the rest."""
    owned: dict[int, list[ServerTurn]] = {u.index: [] for u in utterances}
    phantoms = []
    for turn in turns:
        best = max(utterances, key=lambda u: _overlap(turn, u), default=None)
        if best is None or _overlap(turn, best) < 0:
            phantoms.append(turn)
        else:
            owned[best.index].append(turn)
    return owned, phantoms


def score_scenario(scenario: Scenario, timeline: Timeline) -> ScenarioScore:
    turns = server_turns(timeline.events)
    owned, phantoms = assign_turns(turns, timeline.utterances)
    records = {u.index: u for u in timeline.utterances}
    scores = []
    for index, spec in enumerate(scenario.turns):
        record = records.get(index)
        if record is None:
            stopped = ["not spoken (the run stopped)"]
            scores.append(TurnScore(index, spec.kind, spec.expects_ignored, failures=stopped))
            continue
        scores.append(_score_turn(spec, record, owned[index], timeline))
    for index in range(len(scores)):
        _score_interruption(scenario, index, scores, owned, timeline, records)
    answered_phantoms = [t for t in phantoms if t.answered]
    failures = []
    if answered_phantoms:
        said = ", ".join(_quote(t.transcript) for t in answered_phantoms[:3])
        more = ", ..." if len(answered_phantoms) > 3 else ""
        failures.append(f"answered {len(answered_phantoms)} turn(s) nobody spoke ({said}{more})")
    failures += [f"run: {note}" for note in timeline.notes]
    return ScenarioScore(
        scenario.name,
        list(scenario.tags),
        scores,
        phantom_turns=len(phantoms),
        phantom_answered=len(answered_phantoms),
        failures=failures,
        aborted=timeline.aborted,
    )


def _quote(text: str) -> str:
    return f'"{text}"' if text else "no transcript"


def _score_turn(
    spec: Turn, record: UtteranceRecord, mine: list[ServerTurn], timeline: Timeline
) -> TurnScore:
    score = TurnScore(
        record.index, spec.kind, spec.expects_ignored, server_turns=[t.turn_id for t in mine]
    )
    score.transcript = " ".join(t.transcript for t in mine if t.transcript)
    score.answered = any(t.answered for t in mine)
    for turn in mine:
        score.symbols += spoken_symbols(timeline.heard.get(turn.turn_id, ""))
    if spec.reference is not None:
        score.word_errors, score.reference_words = word_errors(spec.reference, score.transcript)
    ends_early = [t for t in mine if t.audio_end_ms < record.sound_end_ms - TOLERANCE_MS]
    score.cut_ins = len(ends_early)
    score.missed = not spec.expects_ignored and not mine
    final = max(mine, key=lambda t: t.audio_end_ms, default=None)
    # Latency and length are measured on replies that should be made, not on answered noise.
    if final is not None and final not in ends_early and record.spans and not spec.expects_ignored:
        end_t = record.spans[-1].end_t
        score.endpoint_delay_s = final.stopped_t - end_t
        if final.first_audio_t is not None:
            score.voice_to_voice_s = final.first_audio_t - end_t
            score.server_timings = final.timings
    if final is not None:
        score.reply = final.text
        score.interrupted = final.interrupted_t is not None
        if final.status == "completed" and not score.interrupted and not spec.expects_ignored:
            score.reply_s = final.audio_s
    _check_expectations(spec, score)
    return score


def _check_expectations(spec: Turn, score: TurnScore) -> None:
    expect, fail = spec.expect, score.failures
    if spec.expects_ignored:
        if score.answered:
            fail.append(f"answered what should be ignored ({_quote(score.transcript)})")
        return
    if score.missed:
        fail.append("no turn taken")
        return
    if spec.expects_one_turn and len(score.server_turns) != 1:
        fail.append(f"{len(score.server_turns)} turns, expected 1")
    wer = score.wer
    if wer is not None and wer > expect.max_wer:
        fail.append(f"transcript {_quote(score.transcript)}: WER {wer:.0%}")
    if expect.reply_contains_any or expect.reply_contains_none:
        today = date.today()
        wanted_any = [dated(p, today) for p in expect.reply_contains_any]
        hits = [p for p in wanted_any if contains(score.reply, p)]
        bad = [p for p in expect.reply_contains_none if contains(score.reply, dated(p, today))]
        score.correct = (hits or not expect.reply_contains_any) and not bad
        if not score.correct:
            wanted = f"none of {bad}" if bad else f"any of {wanted_any}"
            fail.append(f"reply {_quote(score.reply)} should hold {wanted}")
    if expect.max_reply_s is not None and (score.reply_s or 0) > expect.max_reply_s:
        score.too_long = True
        fail.append(f"reply lasts {score.reply_s:.1f} s (at most {expect.max_reply_s:g} s)")
    if score.symbols:
        fail.append(f"symbols read aloud: {', '.join(sorted(set(score.symbols)))}")


def _score_interruption(
    scenario: Scenario,
    index: int,
    scores: list[TurnScore],
    owned: dict[int, list[ServerTurn]],
    timeline: Timeline,
    records: dict[int, UtteranceRecord],
) -> None:
    """Was the reply to turn `index` cut, and was that meant?"""
    spec, score = scenario.turns[index], scores[index]
    final = max(owned.get(index, []), key=lambda t: t.audio_end_ms, default=None)
    if final is None or not final.answered or spec.expects_ignored:
        return
    playback = timeline.playback.get(final.turn_id)
    following = records.get(index + 1)
    if spec.expect.interrupted:
        onset = following.spans[0].start_t if following and following.spans else None
        if not score.interrupted:
            score.barge_in_missed = True
            score.failures.append("reply not interrupted by the next turn")
            return
        if playback is None or onset is None or playback.end_t >= onset:
            if playback is not None and onset is not None:
                score.barge_in_s = playback.end_t - onset
            return
        # Cut before the person spoke over it: something else interrupted it.
    if not score.interrupted or final.interrupted_t is None:
        return
    score.false_barge_in = _cause(scenario, index, final.interrupted_t, records)
    score.failures.append(f"reply interrupted ({score.false_barge_in})")


def _cause(
    scenario: Scenario, replied: int, at_t: float, records: dict[int, UtteranceRecord]
) -> str:
    """What was sounding into the microphone when the reply to turn `replied` was cut. That turn
    and those before it ended before the reply began, so they cannot have cut it."""
    for index, record in records.items():
        if index > replied and any(s.start_t - 0.1 <= at_t <= s.end_t + 1.0 for s in record.spans):
            return scenario.turns[index].kind
    return "echo" if scenario.echo is not None else "other"
