"""The spoken-length cap ends a long reply at a sentence end."""

from __future__ import annotations

from dandelion.reply_length import ReplyLengthCap


def test_the_reply_ends_at_the_first_sentence_end_past_the_cap() -> None:
    cap = ReplyLengthCap(max_words=8)
    chunks = ["Here are some tips,", "sleep at the same time every day.", "Avoid screens.", "More."]
    spoken = [c for c in chunks if cap.admit(c)]
    assert spoken == chunks[:2]  # 10 words, ending in a full stop
    assert cap.full and cap.text == "Here are some tips, sleep at the same time every day."


def test_a_clause_past_the_cap_goes_on_to_its_sentence_end() -> None:
    cap = ReplyLengthCap(max_words=4)
    assert cap.admit("One two three four five,")
    assert not cap.full
    assert cap.admit("six.")
    assert cap.full and not cap.admit("seven.")


def test_items_without_full_stops_end_at_twice_the_cap() -> None:
    cap = ReplyLengthCap(max_words=3)
    items = ["Drink water", "Sleep well", "Walk daily", "Read books"]
    assert [item for item in items if cap.admit(item)] == items[:3]


def test_zero_is_no_cap() -> None:
    cap = ReplyLengthCap(max_words=0)
    assert all(cap.admit("A sentence of several words.") for _ in range(50))
    assert not cap.full


def test_words_are_counted_as_spoken() -> None:
    cap = ReplyLengthCap(max_words=6)
    assert cap.admit("It costs $1,234.50 in total.")  # "one thousand two hundred ... cents"
    assert cap.full
    markup = ReplyLengthCap(max_words=3)
    assert markup.admit("| a | b | c |")  # three spoken words, no sentence end
    assert not markup.full
    assert markup.admit("**That is all.** 🎉")
    assert markup.full
