"""The session's reply life, in milliseconds: hold and flush, resume, barge-in, failures, carry."""

from __future__ import annotations

import asyncio

import pytest

from dandelion.playback import PlaybackClock
from dandelion.protocol import MediaFrame
from dandelion.protocol import events as ev
from dandelion.reply import IllegalTransition, Reply, ReplyState
from tests.unit.session_harness import Harness, ScriptedStages


def run(test: object) -> None:
    asyncio.run(test())  # type: ignore[operator]


def test_a_speculative_reply_is_held_until_the_turn_ends_then_flushed_in_order() -> None:
    async def test() -> None:
        h = Harness()
        await h.start()
        await h.speak(800)
        await h.silence(320)  # past the 200 ms pause: the reply is made, not sent
        assert h.stages.prompts, "the reply was prepared during the pause"
        assert h.types() == ["session.created", "input_audio.speech_started"]
        await h.silence(320)  # past 500 ms: the turn ends
        types = h.types()
        assert types[2:5] == ["input_audio.speech_stopped", "transcript.final", "response.started"]
        assert types[-3:] == ["response.text.done", "response.audio.done", "response.done"]
        done = h.events(ev.ResponseDone)[0]
        assert isinstance(done, ev.ResponseDone) and done.status == "completed"
        assert done.text == "It is noon. Enjoy lunch."
        assert h.audio_frames(turn_id=done.turn_id)
        roles = [(m["role"], m["content"]) for m in h.session.conversation.messages]
        assert roles == [("user", "What is the time?"), ("assistant", "It is noon. Enjoy lunch.")]
        await h.close()

    run(test)


def test_speech_after_the_pause_drops_the_speculative_reply_unheard() -> None:
    async def test() -> None:
        h = Harness(ScriptedStages(transcripts=["I would like", "I would like a table"]))
        await h.start()
        await h.speak(640)
        await h.silence(320)  # speculative reply for the first half
        await h.speak(640)  # the user goes on: that reply is void
        await h.silence(640)
        stopped = h.events(ev.SpeechStopped)
        assert len(stopped) == 1
        finals = h.events(ev.TranscriptFinal)
        assert [f.text for f in finals] == ["I would like a table"]  # type: ignore[attr-defined]
        turn = finals[0].turn_id  # type: ignore[attr-defined]
        assert all(f.turn_id == turn for f in h.audio_frames())
        assert len(h.events(ev.ResponseDone)) == 1
        users = [m for m in h.session.conversation.messages if m["role"] == "user"]
        assert [m["content"] for m in users] == ["I would like a table"]
        await h.close()

    run(test)


def test_barge_in_cuts_the_reply_and_keeps_only_what_was_heard() -> None:
    async def test() -> None:
        stages = ScriptedStages(reply=["One two three four. ", "Five six seven eight."])
        h = Harness(stages)
        await h.start()
        await h.speak(640)
        await h.silence(640)  # turn ends; 2 s of reply audio starts playing
        await h.silence(480)
        await h.speak(320)  # over the reply, long enough to take the turn
        cut = h.events(ev.ResponseInterrupted)
        assert len(cut) == 1
        interrupted = cut[0]
        assert isinstance(interrupted, ev.ResponseInterrupted)
        assert 0 < interrupted.played_ms < 2000
        assert interrupted.heard_text and "eight" not in interrupted.heard_text
        done = h.events(ev.ResponseDone)[-1]
        assert isinstance(done, ev.ResponseDone) and done.status == "completed"
        # The reply had finished making, so history replaces it with what was heard.
        assert h.session.conversation.messages[-1] == {
            "role": "assistant",
            "content": interrupted.heard_text,
        }
        await h.close()

    run(test)


def test_a_cough_over_the_reply_does_not_interrupt_it() -> None:
    async def test() -> None:
        h = Harness(ScriptedStages(speech_s_per_chunk=2.0))
        await h.start()
        await h.speak(640)
        await h.silence(800)
        await h.speak(96)  # too short to take the turn
        await h.silence(800)
        assert not h.events(ev.ResponseInterrupted)
        assert len(h.events(ev.SpeechStopped)) == 1
        await h.close()

    run(test)


def test_response_cancel_stops_a_reply_being_made() -> None:
    async def test() -> None:
        gate = asyncio.Event()
        h = Harness(ScriptedStages(asr_gate=gate))
        await h.start()
        await h.speak(640)
        await h.silence(640)  # confirmed, still transcribing
        await h.session.receive('{"type": "response.cancel"}')
        await h.settle()
        done = h.events(ev.ResponseDone)
        assert len(done) == 1 and done[0].status == "cancelled"  # type: ignore[attr-defined]
        gate.set()
        await h.silence(320)
        assert len(h.events(ev.ResponseDone)) == 1  # nothing more of that reply
        await h.close()

    run(test)


@pytest.mark.parametrize(
    ("stage", "code"),
    [("transcribe", "asr_failed"), ("chat", "llm_failed"), ("speak", "tts_failed")],
)
def test_a_failing_stage_fails_the_turn_and_the_session_goes_on(stage: str, code: str) -> None:
    async def test() -> None:
        stages = ScriptedStages(fail={stage})
        h = Harness(stages)
        await h.start()
        await h.speak(640)
        await h.silence(640)
        errors = h.events(ev.ErrorEvent)
        assert [e.code for e in errors] == [code]  # type: ignore[attr-defined]
        done = h.events(ev.ResponseDone)
        assert [d.status for d in done] == ["failed"]  # type: ignore[attr-defined]
        stages.fail.clear()
        await h.speak(640)
        await h.silence(640)
        assert [d.status for d in h.events(ev.ResponseDone)] == [  # type: ignore[attr-defined]
            "failed",
            "completed",
        ]
        await h.close()

    run(test)


def test_a_turn_cut_before_its_transcript_is_carried_into_the_next() -> None:
    async def test() -> None:
        gate = asyncio.Event()
        stages = ScriptedStages(asr_gate=gate, transcripts=["first", "first and second"])
        h = Harness(stages)
        await h.start()
        await h.speak(640)
        await h.silence(640)  # confirmed; the ASR is slow
        await h.speak(320)  # barge-in before any transcript
        assert h.events(ev.ResponseInterrupted)
        gate.set()
        await h.silence(640)
        first, second = stages.heard_audio[0], stages.heard_audio[-1]
        assert second > first  # the first turn's audio, then the new speech
        users = [m["content"] for m in h.session.conversation.messages if m["role"] == "user"]
        assert users == ["first and second"]
        await h.close()

    run(test)


def test_no_reply_audio_goes_out_before_the_turn_is_confirmed() -> None:
    async def test() -> None:
        h = Harness()
        await h.start()
        await h.speak(640)
        await h.silence(960)
        stopped_at = h.first_sent_ms(lambda item: isinstance(item, ev.SpeechStopped))
        audio_at = h.first_sent_ms(lambda item: isinstance(item, MediaFrame))
        assert stopped_at is not None and audio_at is not None and audio_at >= stopped_at
        await h.close()

    run(test)


def test_reply_states_only_move_forward() -> None:
    reply = Reply(1, 0, b"", 0.0, PlaybackClock(16_000))
    assert reply.state is ReplyState.SPECULATIVE and not reply.confirmed
    reply.advance(ReplyState.CONFIRMED)
    assert reply.confirmed and not reply.over
    reply.advance(ReplyState.DONE)
    reply.advance(ReplyState.INTERRUPTED)
    assert reply.over
    with pytest.raises(IllegalTransition, match="interrupted -> confirmed"):
        reply.advance(ReplyState.CONFIRMED)
    dropped = Reply(2, 0, b"", 0.0, PlaybackClock(16_000))
    dropped.advance(ReplyState.DROPPED)
    with pytest.raises(IllegalTransition):
        dropped.advance(ReplyState.CONFIRMED)
