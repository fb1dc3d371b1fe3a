"""The session's reply life, in milliseconds: hold and flush, resume, barge-in, failures, carry."""

from __future__ import annotations

import asyncio

import pytest

from dandelion.backends.asr.base import Transcript
from dandelion.playback import PlaybackClock
from dandelion.protocol import MediaFrame
from dandelion.protocol import events as ev
from dandelion.reply import IllegalTransition, Reply, ReplyState
from tests.unit.session_harness import Harness, ScriptedStages

SILENCE = {"detection": "silence"}  # a fixed 500 ms: these tests are about the reply's life


def run(test: object) -> None:
    asyncio.run(test())  # type: ignore[operator]


def test_a_speculative_reply_is_held_until_the_turn_ends_then_flushed_in_order() -> None:
    async def test() -> None:
        h = Harness(turn=SILENCE)
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
        h = Harness(
            ScriptedStages(transcripts=["I would like", "I would like a table"]), turn=SILENCE
        )
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
        h = Harness(stages, turn=SILENCE)
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
        stages = ScriptedStages(transcripts=["What is the time?", ""], speech_s_per_chunk=2.0)
        h = Harness(stages, turn=SILENCE)
        await h.start()
        await h.speak(640)
        await h.silence(800)
        await h.speak(96)  # too short to take the turn
        await h.silence(800)
        assert not h.events(ev.ResponseInterrupted)
        assert len(h.events(ev.SpeechStopped)) == 1
        await h.close()

    run(test)


@pytest.mark.parametrize(
    ("over_the_reply", "reason"),
    [("Uh-huh.", "backchannel"), ("Yeah, right.", "backchannel"), ("noon. Enjoy", "echo")],
)
def test_backchannels_and_echo_over_the_reply_let_it_go_on(
    over_the_reply: str, reason: str
) -> None:
    async def test() -> None:
        stages = ScriptedStages(transcripts=["What is the time?", over_the_reply])
        h = Harness(stages, turn=SILENCE)
        await h.start()
        await h.speak(640)
        await h.silence(640)
        await h.silence(320)
        await h.speak(416)  # over the reply, past barge_in_min_speech_ms
        paused = h.events(ev.ResponseAudioPaused)
        assert len(paused) == 1 and not h.events(ev.ResponseAudioResumed)
        await h.silence(960)  # its end (500 ms of silence here), then a 250 ms grace
        assert not h.events(ev.ResponseInterrupted)
        (ignored,) = h.events(ev.InputIgnored)
        assert ignored.reason == reason  # type: ignore[attr-defined]
        assert len(h.events(ev.ResponseAudioResumed)) == 1
        assert not h.events(ev.ResponseAudioPlayed)  # 2 s of reply, held ~1 s
        await h.silence(4000)
        assert len(h.events(ev.ResponseAudioPlayed)) == 1
        assert len(h.events(ev.SpeechStopped)) == 1  # no turn for it
        assert [d.status for d in h.events(ev.ResponseDone)] == ["completed"]  # type: ignore[attr-defined]
        await h.close()

    run(test)


def test_words_over_the_reply_cut_it_as_soon_as_they_are_heard() -> None:
    async def test() -> None:
        stages = ScriptedStages(
            transcripts=["What is the time?", "Wait, stop", "Wait, stop. What about Tuesday?"]
        )
        h = Harness(stages, turn=SILENCE)
        await h.start()
        await h.speak(640)
        await h.silence(960)
        await h.speak(128)
        assert h.events(ev.ResponseAudioPaused)  # at speech start: the reply is held at once
        await h.speak(96)  # judged at barge_in_min_speech_ms: words, not a backchannel
        (cut,) = h.events(ev.ResponseInterrupted)
        (paused,) = h.events(ev.ResponseAudioPaused)
        assert cut.played_ms == paused.played_ms  # type: ignore[attr-defined]
        await h.speak(960)
        await h.silence(640)
        finals = [f.text for f in h.events(ev.TranscriptFinal)]  # type: ignore[attr-defined]
        assert finals[-1] == "Wait, stop. What about Tuesday?"
        await h.close()

    run(test)


@pytest.mark.parametrize("gain", [0.1, 1.0, 2.0])  # -20 dB to +6 dB
def test_the_replys_own_echo_neither_pauses_nor_interrupts_it(gain: float) -> None:
    async def test() -> None:
        stages = ScriptedStages(transcripts=["What is the time?", "It is noon."])
        h = Harness(stages, turn=SILENCE)
        await h.start()
        await h.speak(640)
        await h.silence(640)
        await h.echo(1600, gain)
        assert h.types().count("input_audio.speech_started") == 1  # only the question's
        assert not h.events(ev.ResponseAudioPaused)
        assert not h.events(ev.ResponseInterrupted)
        await h.close()

    run(test)


def test_speech_over_the_echo_still_interrupts() -> None:
    async def test() -> None:
        stages = ScriptedStages(transcripts=["What is the time?", "Stop, tell me a joke."])
        h = Harness(stages, turn=SILENCE)
        await h.start()
        await h.speak(640)
        await h.silence(640)
        await h.echo(320, 1.0)
        await h.speak(480)  # a person, louder than the echo
        assert h.events(ev.ResponseInterrupted)
        await h.close()

    run(test)


def test_a_first_word_judged_alone_does_not_let_the_reply_resume_under_the_rest() -> None:
    async def test() -> None:
        stages = ScriptedStages(
            transcripts=["What is the time?", "Um", "Um", "Actually, tell me a joke."],
            speech_s_per_chunk=3.0,
        )
        h = Harness(stages, turn={"partial_interval_ms": 0})  # semantic: ends at 200 ms
        await h.start()
        await h.speak(640)
        await h.silence(800)
        await h.speak(224)  # "Um": judged alone at its end (nothing to cut for)
        await h.silence(320)
        await h.speak(640)  # before the grace is over: the rest of the sentence
        await h.silence(640)
        assert not h.events(ev.ResponseAudioResumed)
        assert len(h.events(ev.ResponseAudioPaused)) == 1
        assert h.events(ev.ResponseInterrupted)
        await h.close()

    run(test)


def test_long_speech_over_the_reply_cuts_it_whatever_its_words() -> None:
    async def test() -> None:
        stages = ScriptedStages(transcripts=["What is the time?", "Yeah"])
        h = Harness(stages, turn=SILENCE)
        await h.start()
        await h.speak(640)
        await h.silence(960)
        await h.speak(960)
        assert not h.events(ev.ResponseInterrupted)  # "Yeah" so far: held, not cut
        await h.speak(320)  # past backchannel_max_ms
        assert h.events(ev.ResponseInterrupted)
        await h.close()

    run(test)


def test_the_floor_is_announced_when_the_reply_has_played() -> None:
    async def test() -> None:
        h = Harness(turn=SILENCE)
        await h.start()
        await h.speak(640)
        await h.silence(640)
        assert h.events(ev.ResponseDone) and not h.events(ev.ResponseAudioPlayed)
        await h.silence(3200)
        (audio_done,) = h.events(ev.ResponseAudioDone)
        duration = audio_done.duration_ms  # type: ignore[attr-defined]
        played = h.first_sent_ms(lambda item: isinstance(item, ev.ResponseAudioPlayed))
        first_audio = h.first_sent_ms(lambda item: isinstance(item, MediaFrame))
        assert played is not None and first_audio is not None
        assert duration <= played - first_audio <= duration + 2 * 32  # to the frame
        await h.close()

    run(test)


def test_response_cancel_stops_a_reply_being_made() -> None:
    async def test() -> None:
        gate = asyncio.Event()
        h = Harness(ScriptedStages(asr_gate=gate), turn=SILENCE)
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
        h = Harness(stages, turn=SILENCE)
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


def test_after_a_failed_reply_the_next_question_is_asked_alone() -> None:
    async def test() -> None:
        stages = ScriptedStages(
            transcripts=["Describe how bread is made.", "What is the capital of France?"],
            fail={"chat"},
        )
        h = Harness(stages, turn=SILENCE)
        await h.start()
        await h.speak(640)
        await h.silence(640)
        assert [d.status for d in h.events(ev.ResponseDone)] == ["failed"]  # type: ignore[attr-defined]
        stages.fail.clear()
        await h.speak(640)
        await h.silence(640)
        assert [d.status for d in h.events(ev.ResponseDone)] == ["failed", "completed"]  # type: ignore[attr-defined]
        users = [m["content"] for m in stages.prompts[-1] if m["role"] == "user"]
        assert len(users) == 1 and users[0].endswith("\nWhat is the capital of France?")
        assert "bread" not in users[0]
        # The failed question stays in the history the client reads, as it was said.
        await h.session.receive('{"type": "conversation.get"}')
        (history,) = h.events(ev.ConversationHistory)
        assert [(i.role, i.content) for i in history.items] == [  # type: ignore[attr-defined]
            ("user", "Describe how bread is made."),
            ("user", "What is the capital of France?"),
            ("assistant", "It is noon. Enjoy lunch."),
        ]
        await h.close()

    run(test)


def test_a_turn_cut_before_its_transcript_is_carried_into_the_next() -> None:
    async def test() -> None:
        gate = asyncio.Event()
        stages = ScriptedStages(asr_gate=gate, transcripts=["first", "first and second"])
        h = Harness(stages, turn=SILENCE)
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
        h = Harness(turn=SILENCE)
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


def test_a_noise_taken_for_words_is_not_answered() -> None:
    async def test() -> None:
        sigh = Transcript("Okay, take part.", no_speech_prob=0.8, avg_logprob=-1.1)
        stages = ScriptedStages(transcripts=[sigh])
        h = Harness(stages, turn=SILENCE)
        await h.start()
        await h.speak(640)
        await h.silence(640)
        (ignored,) = h.events(ev.InputIgnored)
        assert ignored.reason == "no_speech"  # type: ignore[attr-defined]
        assert not h.events(ev.TranscriptFinal) and not h.audio_frames()
        assert [d.status for d in h.events(ev.ResponseDone)] == ["ignored"]  # type: ignore[attr-defined]
        assert h.session.conversation.messages == [] and not stages.prompts
        await h.close()

    run(test)


def test_another_language_gets_the_english_only_line_when_asked_to_apologize() -> None:
    async def test() -> None:
        spanish = Transcript(
            "Where is the station?", avg_logprob=-0.5, language="es", language_probability=0.9
        )
        stages = ScriptedStages(transcripts=[spanish])
        h = Harness(stages, turn=SILENCE, speech_gate={"action": "apologize"})
        await h.start()
        await h.speak(640)
        await h.silence(640)
        (ignored,) = h.events(ev.InputIgnored)
        assert ignored.reason == "other_language"  # type: ignore[attr-defined]
        assert stages.spoken == ["Sorry, I only understand English."]
        assert h.audio_frames() and not stages.prompts  # said, without asking the LLM
        (done,) = h.events(ev.ResponseDone)
        assert done.status == "ignored"  # type: ignore[attr-defined]
        assert h.session.conversation.messages == []
        await h.close()

    run(test)


def test_going_on_before_the_reply_is_heard_makes_one_turn_of_both_parts() -> None:
    async def test() -> None:
        stages = ScriptedStages(
            transcripts=[
                "I would like a table.",
                "four people",  # over the reply: words, so it is cut
                "I would like a table for four people.",
            ],
            reply=["Sure, what time would you like the table for the evening? "],
            speech_s_per_chunk=3.0,
        )
        h = Harness(stages, turn={**SILENCE, "partial_interval_ms": 0})
        await h.start()
        await h.speak(960)
        await h.silence(544)  # the turn ends; its reply starts playing
        await h.speak(800)  # the user goes on before a word of it is heard
        await h.silence(640)
        (cut,) = h.events(ev.ResponseInterrupted)
        assert cut.heard_text == ""  # type: ignore[attr-defined]
        whole = stages.heard_audio[-1]
        assert whole > stages.heard_audio[0]  # both parts, transcribed as one
        history = [(m["role"], m["content"]) for m in h.session.conversation.messages]
        assert history == [
            ("user", "I would like a table for four people."),
            ("assistant", "Sure, what time would you like the table for the evening?"),
        ]
        await h.close()

    run(test)


@pytest.mark.parametrize(
    "over_the_reply",
    [
        Transcript("Uh"),  # too short to judge before it ends
        Transcript("and anthem", avg_logprob=-1.3),  # "mm-hmm", words Whisper was unsure of
    ],
)
def test_a_short_or_unclear_sound_over_the_reply_pauses_it_then_lets_it_go_on(
    over_the_reply: Transcript,
) -> None:
    async def test() -> None:
        stages = ScriptedStages(
            transcripts=["What is the time?", over_the_reply], speech_s_per_chunk=3.0
        )
        h = Harness(stages, turn={**SILENCE, "partial_interval_ms": 0})
        await h.start()
        await h.speak(640)
        await h.silence(800)
        await h.speak(160 if over_the_reply.text == "Uh" else 352)
        await h.silence(1_600)  # well past backchannel_max_ms since it started
        assert h.events(ev.ResponseAudioPaused) and h.events(ev.ResponseAudioResumed)
        assert not h.events(ev.ResponseInterrupted)
        await h.close()

    run(test)


def test_no_floor_event_for_a_turn_with_no_audio() -> None:
    async def test() -> None:
        sigh = Transcript("Okay, take part.", no_speech_prob=0.8, avg_logprob=-1.1)
        h = Harness(ScriptedStages(transcripts=[sigh]), turn=SILENCE)
        await h.start()
        await h.speak(640)
        await h.silence(1_280)
        (ignored,) = h.events(ev.InputIgnored)
        assert ignored.turn_id == h.events(ev.SpeechStopped)[0].turn_id  # type: ignore[attr-defined]
        assert not h.events(ev.ResponseAudioPlayed)
        await h.close()

    run(test)


def test_a_backchannel_is_judged_at_its_end_even_under_a_long_fixed_silence() -> None:
    async def test() -> None:
        stages = ScriptedStages(transcripts=["What is the time?", "Uh-huh."], speech_s_per_chunk=3)
        h = Harness(stages, turn={"detection": "silence", "end_of_turn_silence_ms": 3000})
        await h.start()
        await h.speak(640)
        await h.silence(3_200)
        await h.speak(352)
        await h.silence(640)  # not 3 s: speech over a reply ends at a short pause
        assert h.events(ev.ResponseAudioResumed)
        await h.close()

    run(test)


def test_unclear_words_over_the_reply_cut_it_once_longer_than_a_backchannel() -> None:
    async def test() -> None:
        unclear = Transcript("Stop tell me what", avg_logprob=-1.2)
        stages = ScriptedStages(
            transcripts=["What is the time?", unclear, unclear], speech_s_per_chunk=3
        )
        h = Harness(stages, turn={**SILENCE, "partial_interval_ms": 0})
        await h.start()
        await h.speak(640)
        await h.silence(800)
        await h.speak(480)
        assert not h.events(ev.ResponseInterrupted)  # at 192 ms: words the gate doubts
        await h.speak(320)
        assert h.events(ev.ResponseInterrupted)  # at 700 ms: a backchannel is over by then
        await h.close()

    run(test)
