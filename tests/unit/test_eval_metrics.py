"""Each bench metric proven on hand-made timelines: utterances placed on the stream, the server's
events stamped as a real run would stamp them, and the score read back.

Client time here is stream time: a sound at 2,000 ms on the stream was captured at 2.0 s. The
server's turns are written in protocol order (docs/protocol.md §5) by `turn_events`.
"""

from __future__ import annotations

from typing import Any

import pytest

from dandelion.eval.metrics import (
    ScenarioScore,
    TurnScore,
    contains,
    normalize,
    score_scenario,
    spoken_symbols,
    wer_words,
    word_errors,
)
from dandelion.eval.report import aggregate
from dandelion.eval.scenario import Echo, Expect, Scenario, Sound, Turn
from dandelion.eval.timeline import Playback, Span, Timeline, UtteranceRecord

OUTPUT_RATE = 22_050

# ---------------------------------------------------------------- building timelines


def utterance(index: int, spans: list[tuple[int, int]]) -> UtteranceRecord:
    """Scenario turn `index` as sent, sounding over `spans` (stream ms), captured at ms / 1000."""
    return UtteranceRecord(
        index,
        tuple(Span(start, end, start / 1000, end / 1000) for start, end in spans),
        audio_start_ms=spans[0][0],
        audio_end_ms=spans[-1][1],
    )


def turn_events(
    turn_id: int,
    start_ms: int,
    end_ms: int,
    stopped_t: float,
    *,
    transcript: str = "",
    reply: str | None = None,
    first_audio_t: float | None = None,
    audio_s: float = 0.0,
    done_t: float | None = None,
    status: str | None = None,
    interrupted_t: float | None = None,
) -> list[dict[str, Any]]:
    """One server turn's events in protocol order. `reply` None: the server did not answer (no
    `response.started`, no audio). The audio comes as two `response.audio` summaries, so that
    the reply's length has to be summed. `status` defaults to what the other arguments imply."""
    events: list[dict[str, Any]] = [
        {
            "type": "input_audio.speech_stopped",
            "audio_start_ms": start_ms,
            "audio_end_ms": end_ms,
            "turn_id": turn_id,
            "t": stopped_t,
        }
    ]
    if transcript:
        events.append(
            {"type": "transcript.final", "turn_id": turn_id, "text": transcript, "t": stopped_t}
        )
    if reply is not None:
        events.append({"type": "response.started", "turn_id": turn_id, "t": stopped_t + 0.01})
    if first_audio_t is not None:
        samples = round(audio_s * OUTPUT_RATE)
        for i, part in enumerate((samples // 2, samples - samples // 2)):
            events.append(
                {
                    "type": "response.audio",
                    "turn_id": turn_id,
                    "samples": part,
                    "t": first_audio_t + 0.01 * i,
                }
            )
    if interrupted_t is not None:
        events.append({"type": "response.interrupted", "turn_id": turn_id, "t": interrupted_t})
    if status is None:
        status = "empty" if reply is None else "interrupted" if interrupted_t else "completed"
    if done_t is None:
        done_t = max(e["t"] for e in events) + 0.05
    events.append(
        {
            "type": "response.done",
            "turn_id": turn_id,
            "status": status,
            "text": reply or "",
            "t": done_t,
        }
    )
    return events


def timeline(
    utterances: list[UtteranceRecord],
    *turns: list[dict[str, Any]],
    playback: dict[int, Playback] | None = None,
    heard: dict[int, str] | None = None,
) -> Timeline:
    """The run's record: session.created first, then every turn's events by arrival time."""
    created = {"type": "session.created", "output_audio": {"sample_rate": OUTPUT_RATE}, "t": 0.0}
    events = sorted((e for turn in turns for e in turn), key=lambda e: e["t"])
    return Timeline(
        utterances=utterances,
        events=[created, *events],
        playback=playback or {},
        heard=heard or {},
    )


def scenario(*turns: Turn, echo: Echo | None = None) -> Scenario:
    return Scenario(name="hand-made", turns=list(turns), echo=echo)


def first(result: ScenarioScore) -> TurnScore:
    return result.turns[0]


def metric(scores: list[ScenarioScore], key: str) -> float | None:
    return next(m.value for m in aggregate(scores) if m.key == key)


QUESTION = "What is the capital of France?"


def answered_question(
    *more_turns: list[dict[str, Any]], **expect: Any
) -> tuple[Scenario, Timeline]:
    """A question spoken over 0-2,000 ms and answered once, as a healthy server would; then
    `more_turns`, if any, that the server took after it."""
    spec = scenario(Turn(say=QUESTION, expect=Expect(**expect)))
    run = timeline(
        [utterance(0, [(0, 2000)])],
        turn_events(
            1,
            100,
            1950,
            stopped_t=2.55,
            transcript=QUESTION,
            reply="The capital of France is Paris.",
            first_audio_t=3.1,
            audio_s=2.0,
        ),
        *more_turns,
    )
    return spec, run


# ---------------------------------------------------------------- word error rate


def test_exact_transcript_has_no_word_errors() -> None:
    turn = first(score_scenario(*answered_question()))
    assert (turn.word_errors, turn.reference_words, turn.wer) == (0, 6, 0.0)
    assert turn.failures == []


def test_one_substituted_word_is_one_error() -> None:
    assert word_errors(QUESTION, "What is the capital of Spain?") == (1, 6)


def test_missing_turn_makes_every_reference_word_an_error() -> None:
    spec = scenario(Turn(say=QUESTION))
    turn = first(score_scenario(spec, timeline([utterance(0, [(0, 2000)])])))
    assert (turn.word_errors, turn.reference_words) == (6, 6)
    assert turn.missed
    assert turn.failures == ["no turn taken"]


def test_whisper_normalizer_forgives_digits_fillers_case_and_punctuation() -> None:
    # The normalizer writes numbers as digits and drops fillers, so none of these is an error.
    assert word_errors("I have four cats", "Um, I have 4 cats.") == (0, 4)
    assert normalize("WHAT is four?!") == "what is 4"
    # Counted words are normalized words: spoken digits in a row become one number.
    assert normalize("one two three four") == "1234"


def test_transcript_over_max_wer_fails_the_turn() -> None:
    spec = scenario(Turn(say="the quick brown fox", expect=Expect(max_wer=0.2)))
    run = timeline(
        [utterance(0, [(0, 2000)])],
        turn_events(1, 0, 2000, 2.5, transcript="The quick brown box.", reply="OK."),
    )
    turn = first(score_scenario(spec, run))
    assert turn.wer == 0.25
    assert turn.failures == ['transcript "The quick brown box.": WER 25%']


# ---------------------------------------------------------------- turns taken


def test_question_split_by_a_pause_is_one_false_cut_in() -> None:
    # "What is the capital [pause 1.5] of France?": the server ends a turn in the pause.
    spec = scenario(Turn(say="What is the capital [pause 1.5] of France?"))
    run = timeline(
        [utterance(0, [(0, 1200), (2700, 3600)])],
        turn_events(1, 0, 1200, 1.75, transcript="What is the capital", reply="Of what?"),
        turn_events(2, 2700, 3600, 4.15, transcript="of France?", reply="Paris."),
    )
    turn = first(score_scenario(spec, run))
    assert turn.cut_ins == 1
    assert turn.server_turns == [1, 2]
    assert turn.failures == ["2 turns, expected 1"]
    # Both fragments' words count towards the transcript: the split costs no words.
    assert turn.word_errors == 0


def test_one_turn_is_no_cut_in() -> None:
    turn = first(score_scenario(*answered_question()))
    assert (turn.cut_ins, turn.server_turns) == (0, [1])


def test_max_turn_cut_of_a_long_monologue_is_one_cut_in() -> None:
    # The server ends a turn after 28 s of speech without a pause, then takes the rest.
    spec = scenario(Turn(say="a long story", expect=Expect(transcript="a long story")))
    run = timeline(
        [utterance(0, [(0, 29_600)])],
        turn_events(1, 0, 28_000, 28.05, transcript="a long", reply="Go on."),
        turn_events(2, 28_000, 29_550, 30.1, transcript="story", reply="Nice."),
    )
    turn = first(score_scenario(spec, run))
    assert turn.cut_ins == 1
    assert turn.failures == ["2 turns, expected 1"]


def test_spoken_utterance_without_a_server_turn_is_missed() -> None:
    spec = scenario(Turn(say=QUESTION))
    result = score_scenario(spec, timeline([utterance(0, [(0, 2000)])]))
    assert first(result).missed
    assert not result.passed
    assert metric([result], "missed_turns") == 1


def test_answered_phantom_turn_fails_the_scenario() -> None:
    # A turn at 6-7 s, far from the only utterance (0-2 s): nobody spoke it (echo, noise).
    spec, run = answered_question(
        turn_events(2, 6000, 7000, 7.5, transcript="Paris", reply="Yes, Paris.", first_audio_t=8)
    )
    result = score_scenario(spec, run)
    assert (result.phantom_turns, result.phantom_answered) == (1, 1)
    assert result.failures == ['answered 1 turn(s) nobody spoke ("Paris")']
    assert not result.passed
    assert first(result).server_turns == [1]


def test_unanswered_phantom_turn_is_counted_but_does_not_fail() -> None:
    # No transcript: the server ends the turn "empty" and does not answer it.
    spec, run = answered_question(turn_events(2, 6000, 7000, 7.5))
    result = score_scenario(spec, run)
    assert (result.phantom_turns, result.phantom_answered) == (1, 0)
    assert result.passed


# ---------------------------------------------------------------- latency


def test_endpoint_delay_and_voice_to_voice_count_from_the_last_sound() -> None:
    # The last sound ends at 2.0 s; the turn is taken at 2.55 s and first audio is at 3.1 s.
    turn = first(score_scenario(*answered_question()))
    assert turn.endpoint_delay_s == pytest.approx(0.55)
    assert turn.voice_to_voice_s == pytest.approx(1.1)


def test_latency_is_measured_on_the_final_of_split_turns() -> None:
    spec = scenario(Turn(say="What is the capital [pause 1.5] of France?"))
    run = timeline(
        [utterance(0, [(0, 1200), (2700, 3600)])],
        turn_events(1, 0, 1200, 1.75, transcript="What is", reply="Hm?", first_audio_t=2.3),
        turn_events(2, 2700, 3600, 4.2, transcript="of France?", reply="Paris.", first_audio_t=4.9),
    )
    turn = first(score_scenario(spec, run))
    assert turn.endpoint_delay_s == pytest.approx(0.6)
    assert turn.voice_to_voice_s == pytest.approx(1.3)


def test_latency_is_not_measured_when_the_final_turn_ends_early() -> None:
    # Only the first fragment became a turn: it ends 2.4 s before the utterance does, so its
    # speech_stopped says nothing about endpointing the utterance.
    spec = scenario(Turn(say="What is the capital [pause 1.5] of France?"))
    run = timeline(
        [utterance(0, [(0, 1200), (2700, 3600)])],
        turn_events(1, 0, 1200, 1.75, transcript="What is", reply="Hm?", first_audio_t=2.3),
    )
    turn = first(score_scenario(spec, run))
    assert turn.cut_ins == 1
    assert (turn.endpoint_delay_s, turn.voice_to_voice_s) == (None, None)


# ---------------------------------------------------------------- barge-in


def interruption(
    *, interrupted: bool, expect_interrupted: bool = True
) -> tuple[Scenario, Timeline]:
    """A long answer (first audio at 3.0 s) that the user talks over at 4.0-5.5 s; when
    `interrupted`, the server cuts it at 4.4 s and the loudspeaker falls silent at 4.45 s."""
    spec = scenario(
        Turn(say="Tell me about Rome.", expect=Expect(interrupted=expect_interrupted)),
        Turn(say="Stop, what about Paris?", over_reply_s=1.0),
    )
    cut_t = 4.4 if interrupted else None
    run = timeline(
        [utterance(0, [(0, 2000)]), utterance(1, [(4000, 5500)])],
        turn_events(
            1,
            0,
            2000,
            2.5,
            transcript="Tell me about Rome.",
            reply="Rome was founded",
            first_audio_t=3.0,
            audio_s=1.4 if interrupted else 12.0,
            interrupted_t=cut_t,
        ),
        turn_events(2, 4000, 5500, 6.0, transcript="Stop, what about Paris?", reply="Paris is."),
        playback={1: Playback(start_t=3.0, end_t=4.45, cut=True, played_s=1.45)}
        if interrupted
        else {1: Playback(start_t=3.0, end_t=15.0, cut=False, played_s=12.0)},
    )
    return spec, run


def test_barge_in_time_runs_from_the_interrupters_first_sound_to_silence() -> None:
    result = score_scenario(*interruption(interrupted=True))
    turn = first(result)
    assert turn.interrupted
    assert turn.barge_in_s == pytest.approx(4.45 - 4.0)
    assert (turn.barge_in_missed, turn.false_barge_in) == (False, None)
    assert result.passed


def test_expected_interruption_that_does_not_happen_is_missed() -> None:
    result = score_scenario(*interruption(interrupted=False))
    turn = first(result)
    assert turn.barge_in_missed
    assert turn.barge_in_s is None
    assert turn.failures == ["reply not interrupted by the next turn"]
    assert metric([result], "barge_ins_missed") == 1


def test_unexpected_interruption_by_speech_is_a_false_barge_in_by_speech() -> None:
    turn = first(score_scenario(*interruption(interrupted=True, expect_interrupted=False)))
    assert turn.false_barge_in == "speech"
    assert turn.failures == ["reply interrupted (speech)"]


def test_backchannel_that_cuts_the_reply_is_a_false_barge_in() -> None:
    # "Mm-hmm" 2 s into the answer (5.0-5.4 s); the server takes it as a barge-in at 5.6 s,
    # then drops the backchannel's own turn (no transcript, "empty").
    spec = scenario(
        Turn(say="Tell me about Rome."),
        Turn(say="Mm-hmm.", kind="backchannel", over_reply_s=2.0),
    )
    run = timeline(
        [utterance(0, [(0, 2000)]), utterance(1, [(5000, 5400)])],
        turn_events(
            1,
            0,
            2000,
            2.5,
            transcript="Tell me about Rome.",
            reply="Rome was",
            first_audio_t=3.0,
            audio_s=2.6,
            interrupted_t=5.6,
        ),
        turn_events(2, 5000, 5400, 5.9),
    )
    result = score_scenario(spec, run)
    assert first(result).false_barge_in == "backchannel"
    assert first(result).failures == ["reply interrupted (backchannel)"]
    assert result.turns[1].failures == []  # the backchannel itself was not answered
    assert metric([result], "false_barge_ins") == 1


def test_backchannel_that_pauses_the_reply_which_then_resumes_is_no_barge_in() -> None:
    # "Mm-hmm" 2 s into the answer (5.0-5.4 s): the reply pauses at 5.1 s, resumes at 5.9 s
    # and plays on to its end, 0.8 s later than it would have.
    spec = scenario(
        Turn(say="Tell me about Rome."),
        Turn(say="Mm-hmm.", kind="backchannel", over_reply_s=2.0),
    )
    events = turn_events(
        1,
        0,
        2000,
        2.5,
        transcript="Tell me about Rome.",
        reply="Rome was",
        first_audio_t=3.0,
        audio_s=4.0,
    )
    events += [
        {"type": "response.audio.paused", "turn_id": 1, "played_ms": 2100, "t": 5.1},
        {"type": "response.audio.resumed", "turn_id": 1, "t": 5.9},
    ]
    playback = Playback(start_t=3.0, end_t=7.8, cut=False, played_s=4.0, pauses=1, paused_s=0.8)
    run = timeline(
        [utterance(0, [(0, 2000)]), utterance(1, [(5000, 5400)])], events, playback={1: playback}
    )
    result = score_scenario(spec, run)
    turn = first(result)
    assert (turn.interrupted, turn.false_barge_in, turn.barge_in_s) == (False, None, None)
    assert turn.reply_s == pytest.approx(4.0)  # a completed reply's length: its audio, no gap
    assert result.passed
    assert metric([result], "false_barge_ins") == 0


def test_barge_in_after_a_pause_is_timed_to_the_pause() -> None:
    # The reply paused at 4.1 s (the interrupter's first sound at 4.0 s), and the server found
    # it a real interruption at 4.4 s: it has been silent since the pause.
    spec, run = interruption(interrupted=True)
    paused = {"type": "response.audio.paused", "turn_id": 1, "played_ms": 1100, "t": 4.1}
    run.events = sorted([*run.events, paused], key=lambda e: e["t"])
    run.playback = {
        1: Playback(start_t=3.0, end_t=4.1, cut=True, played_s=1.1, pauses=1, paused_s=0.3)
    }
    turn = first(score_scenario(spec, run))
    assert turn.interrupted and turn.false_barge_in is None
    assert turn.barge_in_s == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("first_audio_t", "interrupted_t"),
    [
        # Nobody speaks after 2.0 s; the reply is cut at 4.5 s: its own sound came back.
        (3.0, 4.5),
        # A fast server: audio plays from 2.6 s, its echo barges in at 2.9 s. The question
        # ended before its own reply began, so it cannot be blamed for the cut.
        (2.6, 2.9),
    ],
)
def test_echo_that_cuts_the_reply_is_a_false_barge_in_by_echo(
    first_audio_t: float, interrupted_t: float
) -> None:
    spec = scenario(Turn(say="Tell me about Rome."), echo=Echo())
    run = timeline(
        [utterance(0, [(0, 2000)])],
        turn_events(
            1,
            0,
            2000,
            2.5,
            transcript="Tell me about Rome.",
            reply="Rome was",
            first_audio_t=first_audio_t,
            audio_s=interrupted_t - first_audio_t,
            interrupted_t=interrupted_t,
        ),
    )
    turn = first(score_scenario(spec, run))
    assert turn.false_barge_in == "echo"
    assert turn.failures == ["reply interrupted (echo)"]


def test_interruption_with_no_echo_and_nobody_speaking_is_other() -> None:
    spec = scenario(Turn(say="Tell me about Rome."))
    run = timeline(
        [utterance(0, [(0, 2000)])],
        turn_events(1, 0, 2000, 2.5, reply="Rome", first_audio_t=3.0, interrupted_t=4.5),
    )
    assert first(score_scenario(spec, run)).false_barge_in == "other"


def test_cut_in_fragments_reply_being_interrupted_is_not_a_false_barge_in() -> None:
    # The reply to "What is the capital" is cut when the user goes on: that is the cut-in's
    # fault, counted once as a cut-in, not again as a false barge-in.
    spec = scenario(Turn(say="What is the capital [pause 1.5] of France?"))
    run = timeline(
        [utterance(0, [(0, 1200), (2700, 3600)])],
        turn_events(
            1,
            0,
            1200,
            1.75,
            transcript="What is the capital",
            reply="Of which",
            first_audio_t=2.3,
            audio_s=0.6,
            interrupted_t=2.95,
        ),
        turn_events(2, 2700, 3600, 4.15, transcript="of France?", reply="Paris."),
    )
    result = score_scenario(spec, run)
    assert first(result).false_barge_in is None
    assert first(result).cut_ins == 1
    assert first(result).failures == ["2 turns, expected 1"]
    assert metric([result], "false_barge_ins") == 0


# ---------------------------------------------------------------- turns to ignore


def test_answered_non_speech_fails_and_counts_as_reply_to_non_speech() -> None:
    spec = scenario(Turn(sound=Sound(kind="music", seconds=2.0), kind="non_speech"))
    run = timeline(
        [utterance(0, [(0, 2000)])],
        turn_events(1, 0, 2000, 2.5, transcript="La la la.", reply="Nice song!"),
    )
    result = score_scenario(spec, run)
    assert first(result).answered
    assert first(result).missed is False  # nothing was to be taken
    assert first(result).failures == ['answered what should be ignored ("La la la.")']
    assert metric([result], "replies_to_non_speech") == 1
    # A reply that should not exist is in no latency or length figure.
    assert first(result).voice_to_voice_s is None and first(result).reply_s is None
    assert metric([result], "voice_to_voice_p50") is None


def test_answered_backchannel_counts_as_backchannel_answered() -> None:
    spec = scenario(Turn(say="Mm-hmm.", kind="backchannel"))
    run = timeline(
        [utterance(0, [(0, 500)])],
        turn_events(1, 0, 500, 1.0, transcript="Mm-hmm.", reply="Yes?"),
    )
    result = score_scenario(spec, run)
    assert not result.passed
    assert metric([result], "backchannels_answered") == 1
    assert metric([result], "replies_to_non_speech") == 0


def test_non_speech_turn_ended_empty_is_not_answered() -> None:
    # The server's VAD took the sound as a turn but its ASR heard no words: no reply, no fault.
    spec = scenario(Turn(sound=Sound(kind="sigh", seconds=1.0), kind="non_speech"))
    run = timeline([utterance(0, [(0, 1000)])], turn_events(1, 0, 1000, 1.5, status="empty"))
    result = score_scenario(spec, run)
    assert first(result).server_turns == [1]
    assert not first(result).answered
    assert result.passed
    assert metric([result], "replies_to_non_speech") == 0


# ---------------------------------------------------------------- answer correctness


@pytest.mark.parametrize(
    "heard",
    ["My number is 555-1234.", "My number is 5 5 5. 1 2 3 4", "My number is 555 1234"],
)
def test_a_number_said_in_pieces_is_one_word_however_it_is_written(heard: str) -> None:
    # The normalizer makes "five five five, one two three four" one token; an ASR writes it in
    # pieces. Perfect transcripts must score 0 errors.
    assert word_errors("My number is five five five, one two three four.", heard) == (0, 4)
    assert wer_words("at six thirty") == wer_words("at 6:30") == ["at", "630"]


def test_reply_contains_any_matches_after_normalizing() -> None:
    # The expectation "4" and the reply's "four" both normalize to "4".
    spec = scenario(Turn(say="What is two plus two?", expect=Expect(reply_contains_any=["4"])))
    run = timeline(
        [utterance(0, [(0, 2000)])],
        turn_events(1, 0, 2000, 2.5, transcript="What is 2 plus 2?", reply="Two plus two is four."),
    )
    turn = first(score_scenario(spec, run))
    assert turn.correct is True
    assert turn.failures == []


def test_reply_contains_matches_whole_words_only() -> None:
    assert contains("The capital is Paris.", "paris")
    assert not contains("The capital is Paris.", "par")
    spec, run = answered_question(reply_contains_any=["par"])
    turn = first(score_scenario(spec, run))
    assert turn.correct is False
    assert turn.failures == ["reply \"The capital of France is Paris.\" should hold any of ['par']"]


def test_reply_contains_finds_words_the_english_normalizer_turns_into_digits() -> None:
    # The English normalizer writes "8.5 million" as "8500000"; the word is still there.
    assert contains("About 8.5 million people live there.", "million")
    assert contains("It costs six dollars and fifty cents.", "$6.50")
    assert not contains("About 8.5 million people live there.", "billion")


def test_reply_contains_none_fails_on_a_forbidden_word() -> None:
    spec, run = answered_question(reply_contains_any=["Paris"], reply_contains_none=["france"])
    turn = first(score_scenario(spec, run))
    assert turn.correct is False
    assert turn.failures == [
        "reply \"The capital of France is Paris.\" should hold none of ['france']"
    ]


# ---------------------------------------------------------------- spoken reply length


def test_reply_length_is_the_completed_replys_audio() -> None:
    # 2.0 s of audio at 22,050 Hz, in two response.audio summaries.
    assert first(score_scenario(*answered_question())).reply_s == pytest.approx(2.0)


def test_reply_longer_than_max_reply_s_fails() -> None:
    spec, run = answered_question(max_reply_s=1.5)
    turn = first(score_scenario(spec, run))
    assert turn.too_long
    assert turn.failures == ["reply lasts 2.0 s (at most 1.5 s)"]


def test_interrupted_reply_has_no_length() -> None:
    # Cut after 1.4 s: its length says nothing about how long the assistant meant to talk.
    turn = first(score_scenario(*interruption(interrupted=True)))
    assert turn.reply_s is None
    assert not turn.too_long


def test_completed_reply_interrupted_while_playing_has_no_length() -> None:
    # Protocol §5: a reply fully sent ("completed") can still be cut while it plays.
    spec = scenario(Turn(say="Tell me about Rome."), echo=Echo())
    run = timeline(
        [utterance(0, [(0, 2000)])],
        turn_events(
            1,
            0,
            2000,
            2.5,
            reply="Rome was founded.",
            first_audio_t=3.0,
            audio_s=4.0,
            done_t=3.5,
            status="completed",
            interrupted_t=5.0,
        ),
    )
    turn = first(score_scenario(spec, run))
    assert turn.interrupted
    assert turn.reply_s is None


# ---------------------------------------------------------------- symbols read aloud


def test_markdown_read_aloud_is_counted_per_symbol() -> None:
    spec, run = answered_question()
    run.heard[1] = "asterisk asterisk bread hash hash"  # "**bread##" read as written
    result = score_scenario(spec, run)
    assert len(first(result).symbols) == 4
    assert first(result).failures == ["symbols read aloud: asterisk, hash"]
    assert metric([result], "symbols_read_aloud") == 4


def test_dollar_before_the_number_is_a_symbol_read_aloud() -> None:
    # "$4" read as written is "dollar four"; spoken right it is "four dollars".
    assert spoken_symbols("It costs dollar four.") == ["dollar before the number"]
    assert spoken_symbols("It costs four dollars.") == []
