"""Conversation history, heard text of an interrupted reply, and the playback clock."""

from __future__ import annotations

import pytest

from dandelion.conversation import Conversation, SpokenChunk, heard_text
from dandelion.playback import PlaybackClock

# ---------------------------------------------------------------- heard_text

CHUNKS = [
    SpokenChunk("Hello there,", start_sample=0, num_samples=1000),
    SpokenChunk("how are you doing today?", start_sample=1000, num_samples=2000),
    SpokenChunk("I am fine.", start_sample=3000, num_samples=900),
]


def test_heard_text_nothing_played() -> None:
    assert heard_text(CHUNKS, 0) == ""
    assert heard_text(CHUNKS, -5) == ""
    assert heard_text([], 10_000) == ""


def test_heard_text_whole_chunks() -> None:
    assert heard_text(CHUNKS, 1000) == "Hello there,"
    assert heard_text(CHUNKS, 3000) == "Hello there, how are you doing today?"
    assert heard_text(CHUNKS, 3900) == "Hello there, how are you doing today? I am fine."
    assert heard_text(CHUNKS, 10**9) == "Hello there, how are you doing today? I am fine."


@pytest.mark.parametrize(
    ("played", "expected"),
    [
        (1, ""),  # 1/1000 of two words: none yet
        (499, ""),
        (500, "Hello"),  # half of two words
        (999, "Hello"),
        (1001, "Hello there,"),  # a sample into the second chunk: none of its 5 words
        (1400, "Hello there, how"),  # 400/2000 of 5 words = 1
        (1800, "Hello there, how are"),  # 800/2000 * 5 = 2
        (2999, "Hello there, how are you doing"),  # 1999/2000 * 5 = 4.9975 -> 4
        (3600, "Hello there, how are you doing today? I am"),  # 600/900 * 3 = 2
    ],
)
def test_heard_text_partly_played_chunk(played: int, expected: str) -> None:
    assert heard_text(CHUNKS, played) == expected


def test_heard_text_stops_in_a_gap_between_chunks() -> None:
    chunks = [
        SpokenChunk("One two.", 0, 100),
        SpokenChunk("Three four.", 500, 100),
    ]
    assert heard_text(chunks, 300) == "One two."
    assert heard_text(chunks, 500) == "One two."
    assert heard_text(chunks, 550) == "One two. Three"


def test_heard_text_normalises_whitespace() -> None:
    chunks = [SpokenChunk("  spaced\n out  ", 0, 10), SpokenChunk("", 10, 10)]
    assert heard_text(chunks, 100) == "spaced out"


# ---------------------------------------------------------------- Conversation


def test_prompt_starts_with_system_message() -> None:
    conversation = Conversation("You are helpful.")
    assert conversation.prompt() == [{"role": "system", "content": "You are helpful."}]
    conversation.add_user("Hi")
    conversation.add_assistant("Hello!")
    assert conversation.prompt() == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]


def test_prompt_is_a_copy() -> None:
    conversation = Conversation("sys")
    conversation.add_user("Hi")
    prompt = conversation.prompt()
    prompt.append({"role": "user", "content": "injected"})
    assert len(conversation.messages) == 1


def test_prompt_with_pending_user_turn() -> None:
    conversation = Conversation("sys")
    assert conversation.prompt(pending_user="Hi") == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Hi"},
    ]
    conversation.add_user("Hi")
    conversation.add_assistant("Hello!")
    assert conversation.prompt(pending_user="How are you?")[-1] == {
        "role": "user",
        "content": "How are you?",
    }
    # Not committed: the history is unchanged.
    assert [m["role"] for m in conversation.messages] == ["user", "assistant"]


def test_prompt_pending_user_joins_an_unanswered_user_message() -> None:
    conversation = Conversation("sys")
    conversation.add_user("What is")
    prompt = conversation.prompt(pending_user="the time?")
    assert prompt[1:] == [{"role": "user", "content": "What is the time?"}]
    assert conversation.messages == [{"role": "user", "content": "What is"}]
    # Committing the same text gives the same prompt.
    conversation.add_user("the time?")
    assert conversation.prompt() == prompt


def test_instructions_change_shows_in_prompt() -> None:
    conversation = Conversation("old")
    conversation.instructions = "new"
    assert conversation.prompt()[0] == {"role": "system", "content": "new"}


def test_add_user_merges_consecutive_user_messages() -> None:
    conversation = Conversation("sys")
    conversation.add_user("What is")
    conversation.add_user("the weather?")
    assert conversation.messages == [{"role": "user", "content": "What is the weather?"}]
    conversation.add_assistant("Sunny.")
    conversation.add_user("Thanks")
    assert [m["role"] for m in conversation.messages] == ["user", "assistant", "user"]


def test_a_failed_turns_words_stay_in_the_history_but_start_no_merge() -> None:
    conversation = Conversation("sys")
    conversation.add_user("Hi")
    conversation.add_assistant("Hello!")
    conversation.add_user("Describe how bread is made.", context="Monday")
    conversation.fail_user()
    conversation.add_user("What is the capital of France?")
    assert conversation.messages == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {
            "role": "user",
            "content": "Describe how bread is made.",
            "context": "Monday",
            "status": "failed",
        },
        {"role": "user", "content": "What is the capital of France?"},
    ]
    # The user speaking again before any reply is still one turn (repair).
    conversation.add_user("And of Spain?")
    assert conversation.messages[-1]["content"] == "What is the capital of France? And of Spain?"


def test_the_prompt_leaves_out_a_failed_turns_words() -> None:
    conversation = Conversation("sys")
    conversation.add_user("Hi")
    conversation.add_assistant("Hello!")
    conversation.add_user("Describe how bread is made.")
    conversation.fail_user()
    expected = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Paris?"},
    ]
    assert conversation.prompt() == expected[:3]
    assert conversation.prompt(pending_user="Paris?") == expected
    # Committing the same text gives the same prompt (the LLM's cache holds).
    conversation.add_user("Paris?")
    assert conversation.prompt() == expected


def test_a_failed_reply_heard_in_part_makes_an_exchange_again() -> None:
    conversation = Conversation("sys")
    conversation.add_user("Tell me a story")
    conversation.fail_user()
    conversation.add_assistant("Once upon")  # its audio, cut while playing
    assert conversation.messages == [
        {"role": "user", "content": "Tell me a story"},
        {"role": "assistant", "content": "Once upon"},
    ]
    assert [m["role"] for m in conversation.prompt()] == ["system", "user", "assistant"]


def test_fail_user_marks_only_a_user_message() -> None:
    conversation = Conversation("sys")
    conversation.fail_user()
    conversation.add_user("Hi")
    conversation.add_assistant("Hello!")
    conversation.fail_user()
    assert all("status" not in m for m in conversation.messages)


def test_add_assistant_ignores_empty_text() -> None:
    conversation = Conversation("sys")
    conversation.add_user("Hi")
    conversation.add_assistant("")
    assert conversation.messages == [{"role": "user", "content": "Hi"}]


def test_replace_last_assistant() -> None:
    conversation = Conversation("sys")
    conversation.add_user("Tell me a story")
    conversation.add_assistant("Once upon a time there was a dragon.")
    conversation.replace_last_assistant("Once upon a time")
    assert conversation.messages[-1] == {"role": "assistant", "content": "Once upon a time"}
    assert len(conversation.messages) == 2


def test_replace_last_assistant_with_nothing_heard_removes_it() -> None:
    conversation = Conversation("sys")
    conversation.add_user("Tell me a story")
    conversation.add_assistant("Once upon a time.")
    conversation.replace_last_assistant("")
    assert conversation.messages == [{"role": "user", "content": "Tell me a story"}]
    # The next user message then joins the unanswered one.
    conversation.add_user("A short one")
    assert conversation.messages == [{"role": "user", "content": "Tell me a story A short one"}]


def test_replace_last_assistant_without_assistant_is_a_no_op() -> None:
    conversation = Conversation("sys")
    conversation.replace_last_assistant("ignored")
    assert conversation.messages == []
    conversation.add_user("Hi")
    conversation.replace_last_assistant("ignored")
    conversation.replace_last_assistant("")
    assert conversation.messages == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("max_messages", [2, 3, 4, 5, 40])
def test_trimming_keeps_a_user_message_first(max_messages: int) -> None:
    conversation = Conversation("sys", max_messages=max_messages)
    for i in range(30):
        conversation.add_user(f"question {i}")
        assert len(conversation.messages) <= max_messages
        assert conversation.messages[0]["role"] == "user"
        conversation.add_assistant(f"answer {i}")
        assert len(conversation.messages) <= max_messages
        assert conversation.messages[0]["role"] == "user"
    # The newest exchange is always kept, and the prompt still leads with the system message.
    assert conversation.messages[-1] == {"role": "assistant", "content": "answer 29"}
    assert conversation.prompt()[0]["role"] == "system"
    roles = [m["role"] for m in conversation.messages]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"] * (len(roles) % 2)


def test_trimming_around_failed_turns_keeps_a_user_message_first() -> None:
    conversation = Conversation("sys", max_messages=4)
    for i in range(10):
        conversation.add_user(f"failed {i}")
        conversation.fail_user()
        conversation.add_user(f"q{i}")
        conversation.add_assistant(f"a{i}")
        assert len(conversation.messages) <= 4
        assert conversation.messages[0]["role"] == "user"
    assert [m["content"] for m in conversation.messages] == ["failed 9", "q9", "a9"]
    assert [m["content"] for m in conversation.prompt()] == ["sys", "q9", "a9"]


def test_trimming_drops_oldest_exchanges() -> None:
    conversation = Conversation("sys", max_messages=4)
    for i in range(3):
        conversation.add_user(f"q{i}")
        conversation.add_assistant(f"a{i}")
    assert [m["content"] for m in conversation.messages] == ["q1", "a1", "q2", "a2"]


def test_conversations_do_not_share_history() -> None:
    a, b = Conversation("sys"), Conversation("sys")
    a.add_user("Hi")
    assert b.messages == []


# ---------------------------------------------------------------- PlaybackClock

RATE = 16_000  # 0.25 s = 4000 samples, exactly representable times


def test_clock_before_anything_is_sent() -> None:
    clock = PlaybackClock(RATE)
    assert not clock.started
    assert not clock.playing(0.0)
    assert clock.played_samples(10.0) == 0


def test_clock_real_time_sending() -> None:
    clock = PlaybackClock(RATE)
    clock.sent(4000, at=1.0)  # plays 1.0 .. 1.25
    assert clock.started
    assert clock.played_samples(0.5) == 0
    assert clock.played_samples(1.0) == 0
    assert clock.played_samples(1.125) == 2000
    assert clock.played_samples(1.25) == 4000
    assert clock.played_samples(5.0) == 4000
    assert clock.playing(1.0)
    assert clock.playing(1.2)
    assert not clock.playing(1.25)


def test_clock_chunks_sent_faster_than_real_time_queue_up() -> None:
    clock = PlaybackClock(RATE)
    # Three 0.5 s chunks sent within 0.25 s: they play back to back, 0.0 .. 1.5.
    clock.sent(8000, at=0.0)
    clock.sent(8000, at=0.125)
    clock.sent(8000, at=0.25)
    assert clock.played_samples(0.25) == 4000
    assert clock.played_samples(0.5) == 8000
    assert clock.played_samples(0.75) == 12_000
    assert clock.played_samples(1.25) == 20_000
    assert clock.played_samples(1.5) == 24_000
    assert clock.played_samples(3.0) == 24_000
    assert clock.playing(1.375)
    assert not clock.playing(1.5)


def test_clock_gap_resets_to_send_time() -> None:
    clock = PlaybackClock(RATE)
    clock.sent(8000, at=0.0)  # 0.0 .. 0.5
    assert clock.playing(0.25)
    assert not clock.playing(1.0)  # ran dry
    clock.sent(4000, at=2.0)  # underrun: plays 2.0 .. 2.25, not 0.5 .. 0.75
    assert clock.played_samples(1.0) == 8000
    assert clock.played_samples(2.0) == 8000
    assert clock.playing(2.0)
    assert clock.played_samples(2.125) == 10_000
    assert clock.played_samples(2.25) == 12_000
    assert not clock.playing(2.25)


def test_clock_queue_then_gap_then_queue() -> None:
    # Queries in time order, interleaved with the sends, as a session makes them.
    clock = PlaybackClock(RATE)
    clock.sent(4000, at=0.0)  # 0.0 .. 0.25
    clock.sent(4000, at=0.0)  # 0.25 .. 0.5
    assert [clock.playing(t) for t in (0.0, 0.25, 0.49)] == [True, True, True]
    assert clock.played_samples(0.375) == 6000
    assert [clock.playing(t) for t in (0.5, 0.9)] == [False, False]
    clock.sent(4000, at=1.0)  # 1.0 .. 1.25
    clock.sent(4000, at=1.0)  # 1.25 .. 1.5
    assert [clock.playing(t) for t in (1.0, 1.49, 1.5)] == [True, True, False]
    assert clock.played_samples(0.75) == 8000
    assert clock.played_samples(1.375) == 14_000
    assert clock.played_samples(1.5) == 16_000


def test_clock_played_samples_is_monotonic() -> None:
    clock = PlaybackClock(24_000)
    for i in range(20):
        clock.sent(480 * (i % 4 + 1), at=i * 0.01 + (0.5 if i > 10 else 0.0))
    total = sum(480 * (i % 4 + 1) for i in range(20))
    previous = 0
    for step in range(400):
        played = clock.played_samples(step * 0.005)
        assert previous <= played <= total
        previous = played
    assert previous == total


def test_retract_user_takes_back_the_last_words_only() -> None:
    conversation = Conversation("sys")
    conversation.add_user("Hello.")
    conversation.add_assistant("Hi!")
    conversation.add_user("I would like")
    conversation.add_user("a table")
    conversation.retract_user("a table")
    assert conversation.messages[-1]["content"] == "I would like"
    conversation.retract_user("I would like")
    assert conversation.messages[-1] == {"role": "assistant", "content": "Hi!"}
    conversation.retract_user("Hi!")  # not the user's: nothing happens
    assert len(conversation.messages) == 2
