"""End of turn by meaning: the lexical judge, the silence table, and a session using them."""

from __future__ import annotations

import asyncio

import pytest

from dandelion.end_of_turn import (
    Completeness,
    lexical_completeness,
    required_silence_ms,
)
from dandelion.protocol import events as ev
from tests.unit.session_harness import Harness, ScriptedStages

C = Completeness


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        ("I would like to book a table for", C.INCOMPLETE),
        ("I would like to book a table for.", C.INCOMPLETE),  # Whisper's period changes nothing
        ("What is the capital of...", C.INCOMPLETE),
        ("Can you tell me the", C.INCOMPLETE),
        ("My name is", C.INCOMPLETE),
        ("So, um", C.INCOMPLETE),
        ("And so, my fellow Americans,", C.INCOMPLETE),
        ("I need eggs, milk and", C.INCOMPLETE),
        ("What is the capital of France?", C.COMPLETE),
        ("What are you thinking of?", C.UNSURE),  # the LLM decides
        ("Can you tell me the way to?", C.UNSURE),
        ("Stop!", C.COMPLETE),
        ("Book a table for four people at seven tonight.", C.UNSURE),
        ("Yes.", C.UNSURE),
        ("", C.UNKNOWN),
        ("...", C.UNKNOWN),
    ],
)
def test_lexical_completeness(transcript: str, expected: Completeness) -> None:
    assert lexical_completeness(transcript) is expected


def test_the_llm_refines_all_but_plainly_unfinished_endings() -> None:
    assert C.UNSURE.combine(0.9) is C.COMPLETE
    assert C.UNSURE.combine(0.01) is C.INCOMPLETE
    assert C.UNSURE.combine(0.2) is C.UNSURE
    assert C.UNSURE.combine(None) is C.UNSURE
    assert C.INCOMPLETE.combine(0.99) is C.INCOMPLETE
    assert C.COMPLETE.combine(0.2) is C.COMPLETE
    assert C.COMPLETE.combine(0.01) is C.INCOMPLETE


def test_silences_grow_with_doubt_and_shrink_with_eagerness() -> None:
    for eagerness in ("low", "medium", "high"):
        order = [C.COMPLETE, C.UNSURE, C.INCOMPLETE]
        silences = [required_silence_ms(c, eagerness) for c in order]
        assert silences == sorted(silences)
    for completeness in C:
        by_eagerness = [required_silence_ms(completeness, e) for e in ("low", "medium", "high")]
        assert by_eagerness == sorted(by_eagerness, reverse=True)
    assert required_silence_ms(C.COMPLETE, "medium") <= 200
    assert required_silence_ms(C.INCOMPLETE, "medium") >= 1_500
    # A monologue's complete sentence waits a little; its closing question does not.
    assert required_silence_ms(C.COMPLETE, "medium", speech_ms=8_000) == 600
    assert required_silence_ms(C.COMPLETE, "medium", speech_ms=8_000, question=True) == 200
    assert required_silence_ms(C.COMPLETE, "medium", speech_ms=3_000) == 200


# ---------------------------------------------------------------- in a session


def stopped_after_silence_ms(h: Harness) -> list[int]:
    """For each speech_stopped: how much silence (ms of audio) had passed since the speech."""
    return [ms - item.audio_end_ms for ms, item in h.sent if isinstance(item, ev.SpeechStopped)]


def test_a_plain_question_ends_after_a_short_silence() -> None:
    async def test() -> None:
        h = Harness(ScriptedStages(transcripts=["What is the capital of France?"]))
        await h.start()
        await h.speak(960)
        await h.silence(640)
        (waited,) = stopped_after_silence_ms(h)
        assert waited <= 300
        assert h.stages.scored == []  # a question: the LLM is not asked
        await h.close()

    asyncio.run(test())


def test_a_speaker_who_stops_mid_sentence_is_not_cut_off() -> None:
    async def test() -> None:
        stages = ScriptedStages(
            transcripts=[
                "I would like to book a table for",
                "I would like to book a table for four people at seven tonight.",
            ],
            end_of_turn=[0.01, 0.8],
        )
        h = Harness(stages)
        await h.start()
        await h.speak(1600)
        await h.silence(1312)  # thinking
        assert not h.events(ev.SpeechStopped)
        await h.speak(1280)
        await h.silence(640)
        finals = h.events(ev.TranscriptFinal)
        assert [f.text for f in finals] == [stages.transcripts[1]]  # type: ignore[attr-defined]
        assert len(h.events(ev.SpeechStopped)) == 1
        assert len(h.events(ev.ResponseDone)) == 1
        await h.close()

    asyncio.run(test())


def test_a_statement_is_scored_by_the_llm_on_the_replys_own_prompt() -> None:
    async def test() -> None:
        stages = ScriptedStages(transcripts=["I would like a pizza."], end_of_turn=[0.9])
        h = Harness(stages)
        await h.start()
        await h.speak(960)
        await h.silence(640)
        (scored,) = h.stages.scored
        assert scored.endswith("\nI would like a pizza.")  # after the date line
        assert h.stages.prompts[0][-1]["content"].endswith(scored)
        (waited,) = stopped_after_silence_ms(h)
        assert waited <= 300  # the LLM found it complete
        await h.close()

    asyncio.run(test())


def test_an_unfinished_statement_waits_for_the_llm_and_then_its_long_silence() -> None:
    async def test() -> None:
        stages = ScriptedStages(transcripts=["Let me think"], end_of_turn=[0.01])
        h = Harness(stages)
        await h.start()
        await h.speak(960)
        await h.silence(2_400)
        assert not h.events(ev.SpeechStopped)
        await h.silence(640)  # past 2.5 s: the turn ends after all
        (waited,) = stopped_after_silence_ms(h)
        assert 2_500 <= waited <= 2_600
        await h.close()

    asyncio.run(test())


def test_without_an_llm_score_a_statement_ends_after_the_unsure_silence() -> None:
    async def test() -> None:
        stages = ScriptedStages(transcripts=["Book a table."], fail={"score"})
        h = Harness(stages)
        await h.start()
        await h.speak(960)
        await h.silence(2_000)
        (waited,) = stopped_after_silence_ms(h)
        assert 1_600 <= waited <= 1_700
        assert h.events(ev.ResponseDone)[0].status == "completed"  # type: ignore[attr-defined]
        await h.close()

    asyncio.run(test())


def test_eagerness_and_detection_are_set_per_session() -> None:
    async def test() -> None:
        stages = ScriptedStages(transcripts=["Book a table."], end_of_turn=[0.3])
        h = Harness(stages)
        await h.start()
        created = h.events(ev.SessionCreated)[0]
        assert created.turn_detection == "semantic"  # type: ignore[attr-defined]
        await h.session.receive('{"type": "session.update", "session": {"eagerness": "high"}}')
        updated = h.events(ev.SessionUpdated)[-1]
        assert updated.eagerness == "high"  # type: ignore[attr-defined]
        await h.speak(960)
        await h.silence(960)
        (waited,) = stopped_after_silence_ms(h)
        assert waited <= 850  # unsure at high eagerness: 800 ms
        silence = '{"type": "session.update", "session": {"end_of_turn_silence_ms": 700}}'
        await h.session.receive(silence)
        updated = h.events(ev.SessionUpdated)[-1]
        assert updated.turn_detection == "silence"  # type: ignore[attr-defined]
        await h.close()

    asyncio.run(test())


def test_a_short_fixed_silence_does_not_outlive_a_switch_back_to_semantic() -> None:
    async def test() -> None:
        stages = ScriptedStages(
            transcripts=["I would like to book a table for", "I would like a table for four."],
            end_of_turn=[0.9],  # asked for the second only: the first ends on "for"
        )
        h = Harness(stages, turn={"partial_interval_ms": 0})
        await h.start()
        for update in (
            '{"end_of_turn_silence_ms": 100}',
            '{"end_of_turn_silence_ms": 700, "turn_detection": "semantic"}',
        ):
            await h.session.receive(f'{{"type": "session.update", "session": {update}}}')
        assert h.events(ev.SessionUpdated)[-1].turn_detection == "semantic"  # type: ignore[attr-defined]
        await h.speak(960)
        await h.silence(1_312)  # thinking: judged unfinished, so not cut off
        assert not h.events(ev.SpeechStopped)
        await h.speak(640)
        await h.silence(640)
        assert len(h.events(ev.SpeechStopped)) == 1
        await h.close()

    asyncio.run(test())


def test_a_question_the_llm_does_not_find_unfinished_ends_after_the_short_silence() -> None:
    async def test() -> None:
        stages = ScriptedStages(transcripts=["What are you thinking of?"], end_of_turn=[0.2])
        h = Harness(stages)
        await h.start()
        await h.speak(960)
        await h.silence(640)
        (waited,) = stopped_after_silence_ms(h)
        assert waited <= 300  # unsure by form ("of?"), not unfinished by the LLM: a question
        await h.close()

    asyncio.run(test())
