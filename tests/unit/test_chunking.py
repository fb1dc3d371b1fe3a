"""SentenceChunker fed with token-like deltas, as an LLM stream would."""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Iterable

import pytest

from dandelion.chunking import ChunkerConfig, SentenceChunker


def char_pieces(text: str) -> list[str]:
    return list(text)


def small_pieces(text: str, seed: int = 0) -> list[str]:
    """Random 1-4 character deltas."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 4)
        out.append(text[i : i + n])
        i += n
    return out


def word_pieces(text: str) -> list[str]:
    """Word tokens carrying their leading whitespace, as LLM tokenizers emit them."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text)


Splitter = Callable[[str], list[str]]
SPLITTERS: list[Splitter] = [
    char_pieces,
    small_pieces,
    lambda t: small_pieces(t, seed=1),
    lambda t: small_pieces(t, seed=2),
    word_pieces,
]
SPLITTER_IDS = ["chars", "pieces0", "pieces1", "pieces2", "words"]


def stream(
    pieces: Iterable[str], config: ChunkerConfig | None = None
) -> tuple[list[list[str]], list[str]]:
    """Returns the chunks each push produced and what flush produced."""
    chunker = SentenceChunker(config)
    pushed = [chunker.push(piece) for piece in pieces]
    return pushed, chunker.flush()


def chunks_of(
    text: str, split: Splitter = char_pieces, config: ChunkerConfig | None = None
) -> list[str]:
    pushed, flushed = stream(split(text), config)
    return [c for batch in pushed for c in batch] + flushed


def test_splitters_reassemble() -> None:
    text = "Hello there, world. How are you?"
    for split in SPLITTERS:
        assert "".join(split(text)) == text
    assert word_pieces(text) == ["Hello", " there,", " world.", " How", " are", " you?"]


# ---------------------------------------------------------------- first chunk


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_first_chunk_ends_at_clause(split: Splitter) -> None:
    text = "Of course you can, and here is how. First open the settings menu."
    assert chunks_of(text, split) == [
        "Of course you can,",
        "and here is how.",
        "First open the settings menu.",
    ]


def test_first_chunk_is_emitted_as_soon_as_the_clause_completes() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Of course you can,") == []  # the comma needs whitespace after it
    assert chunker.push(" ") == ["Of course you can,"]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_first_chunk_ends_at_short_sentence(split: Splitter) -> None:
    assert chunks_of("Yes. That is right, and more.", split) == ["Yes.", "That is right, and more."]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_first_clause_needs_min_words(split: Splitter) -> None:
    # "Well," and "well, yes," are under first_chunk_min_words (3).
    text = "Well, yes, I think so, but it depends. Let us check the details first."
    assert chunks_of(text, split) == [
        "Well, yes, I think so,",
        "but it depends. Let us check the details first.",
    ]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_first_chunk_after_max_words_without_punctuation(split: Splitter) -> None:
    # Past first_chunk_max_words (6), the first chunk ends before the latest function word.
    text = "The quick brown fox jumps over the lazy dog and keeps running far away."
    assert chunks_of(text, split) == [
        "The quick brown fox jumps over the lazy dog",
        "and keeps running far away.",
    ]
    text = "There are approximately 8.5 million people living in Paris, France."
    assert chunks_of(text, split) == [
        "There are approximately 8.5 million people living",
        "in Paris, France.",
    ]


def test_max_words_waits_for_the_word_to_complete() -> None:
    # With no function word to break before, the first chunk ends after 6 words once 12 are in.
    chunker = SentenceChunker()
    assert chunker.push("one two three four five six seven eight nine ten eleven twelve") == []
    assert chunker.push(" ") == ["one two three four five six"]


def test_first_chunk_max_words_zero_waits_for_punctuation() -> None:
    config = ChunkerConfig(first_chunk_max_words=0)
    text = "The quick brown fox jumps over the lazy dog and keeps running. Far away."
    assert chunks_of(text, word_pieces, config) == [
        "The quick brown fox jumps over the lazy dog and keeps running.",
        "Far away.",
    ]


def test_max_words_does_not_apply_after_first_chunk() -> None:
    text = "Okay. one two three four five six seven eight nine ten eleven twelve"
    pushed, flushed = stream(word_pieces(text))
    assert [c for batch in pushed for c in batch] == ["Okay."]
    assert flushed == ["one two three four five six seven eight nine ten eleven twelve"]


# ---------------------------------------------------------------- later chunks


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_later_chunks_end_at_sentences_and_short_ones_merge(split: Splitter) -> None:
    text = "Hello, my good friend, nice to see you. Yes. I agree. That is a good plan indeed."
    assert chunks_of(text, split) == [
        "Hello, my good friend,",
        "nice to see you.",
        "Yes. I agree. That is a good plan indeed.",
    ]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_later_chunks_do_not_split_at_clauses(split: Splitter) -> None:
    text = "Sure. First, open the menu, then pick an item, and finally press save. Done!"
    assert chunks_of(text, split) == [
        "Sure.",
        "First, open the menu, then pick an item, and finally press save.",
        "Done!",
    ]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_sentence_ends_with_other_marks_and_closing_quotes(split: Splitter) -> None:
    text = (
        "Hmm, well, I am not sure! Maybe? Let me think about it for a second; okay then. "
        '"Quoted sentence here." (And a parenthetical one.) Done.'
    )
    assert chunks_of(text, split) == [
        "Hmm, well, I am not sure!",
        "Maybe? Let me think about it for a second;",
        'okay then. "Quoted sentence here."',
        "(And a parenthetical one.)",
        "Done.",
    ]


def test_min_words_counts_from_start_of_buffer() -> None:
    config = ChunkerConfig(min_words=2)
    assert chunks_of("Okay. I see. Good. Very good.", word_pieces, config) == [
        "Okay.",
        "I see.",
        "Good. Very good.",
    ]


# ---------------------------------------------------------------- no false splits


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_abbreviations_do_not_split(split: Splitter) -> None:
    text = (
        "Okay. I met Dr. Smith and Mr. Jones at the clinic. "
        "Use tools, e.g. this one here today. It was approx. three hours, i.e. long. "
        "Written by J. R. Tolkien, no. really, as they say."
    )
    assert chunks_of(text, split) == [
        "Okay.",
        "I met Dr. Smith and Mr. Jones at the clinic.",
        "Use tools, e.g. this one here today.",
        "It was approx. three hours, i.e. long.",
        "Written by J. R. Tolkien, no. really, as they say.",
    ]


def test_abbreviation_at_start_of_first_chunk() -> None:
    config = ChunkerConfig(first_chunk_max_words=0)
    assert chunks_of("Dr. Smith will see you now. Please wait.", word_pieces, config) == [
        "Dr. Smith will see you now.",
        "Please wait.",
    ]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_decimals_do_not_split(split: Splitter) -> None:
    text = "Okay. The city has 3.5 million people living there now. Growth was 2.75 percent."
    assert chunks_of(text, split) == [
        "Okay.",
        "The city has 3.5 million people living there now.",
        "Growth was 2.75 percent.",
    ]


def test_final_period_waits_for_whitespace_or_flush() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Okay. ") == ["Okay."]
    assert chunker.push("That is all there is.") == []
    assert chunker.flush() == ["That is all there is."]


# ---------------------------------------------------------------- max_chars


def test_max_chars_forces_split_at_whitespace() -> None:
    config = ChunkerConfig(max_chars=40)
    text = "Okay. " + " ".join(f"word{i}" for i in range(40))
    chunks = chunks_of(text, word_pieces, config)
    assert chunks[0] == "Okay."
    assert len(chunks) > 3
    for chunk in chunks:
        assert len(chunk) <= 40
        assert chunk == chunk.strip()
    assert " ".join(chunks).split() == text.split()  # no word was cut


def test_max_chars_cut_is_the_last_space_before_the_limit() -> None:
    chunker = SentenceChunker(ChunkerConfig(max_chars=20))
    assert chunker.push("Okay. ") == ["Okay."]
    assert chunker.push("aaaa bbbb cccc dddd eeee") == ["aaaa bbbb cccc dddd"]
    assert chunker.flush() == ["eeee"]


def test_max_chars_without_whitespace_cuts_at_the_limit() -> None:
    chunker = SentenceChunker(ChunkerConfig(max_chars=40))
    assert chunker.push("Okay. ") == ["Okay."]
    assert chunker.push("x" * 100 + " ") == ["x" * 40, "x" * 40]
    assert chunker.flush() == ["x" * 20]


def test_max_chars_cut_falls_on_any_whitespace() -> None:
    chunker = SentenceChunker(ChunkerConfig(max_chars=20))
    assert chunker.push("Okay. ") == ["Okay."]
    assert chunker.push("aaaa\tbbbb\tcccc\tdddd\teeee") == ["aaaa\tbbbb\tcccc\tdddd"]


def test_max_chars_cut_does_not_split_a_number_it_can_keep_whole() -> None:
    # The reviewer's case: letters glued to a long number, then a space.
    text = "Okay. " + "x" * 20 + "0123456789" * 10 + " end"
    assert chunks_of(text, config=ChunkerConfig(max_chars=100)) == [
        "Okay.",
        "x" * 20,
        "0123456789" * 10,
        "end",
    ]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_max_chars_cut_in_a_long_token_keeps_digit_runs_whole(split: Splitter) -> None:
    text = (
        "Okay. see\thttps://example.com/path/1234567890123/more/9876543210 and "
        "1,234,567,890,123,456,789,012 then 3.14159265358979323846264338 ok"
    )
    assert chunks_of(text, split, ChunkerConfig(max_chars=30)) == [
        "Okay.",
        "see",
        "https://example.com/path/",  # after a slash, not inside "1234567890123"
        "1234567890123/more/9876543210",
        "and",
        "1,234,567,890,123,456,789,012",
        "then",
        "3.14159265358979323846264338",
        "ok",
    ]


def test_max_chars_cut_splits_a_digit_run_only_when_it_is_longer_than_the_limit() -> None:
    config = ChunkerConfig(max_chars=40)
    digits = "".join(str(i % 10) for i in range(100))
    assert chunks_of("Okay. " + digits, config=config) == [
        "Okay.",
        digits[:40],
        digits[40:80],
        digits[80:],
    ]
    assert chunks_of("Okay. 1,234,567,890,123,456,789,012,345,678,901", config=config) == [
        "Okay.",
        "1,234,567,890,123,456,789,012,345,678,",
        "901",
    ]


def test_random_long_tokens_are_cut_only_where_they_must_be() -> None:
    rng = random.Random(99)
    vocab = ["word", "3.14", "https://example.com/a1/b22/c333", "1,234,567", "x" * 25, "9" * 25]
    for _ in range(100):
        text = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 30)))
        limit = rng.randint(31, 60)  # the longest token has 31 characters
        chunks = chunks_of(text, word_pieces, ChunkerConfig(max_chars=limit))
        assert all(len(chunk) <= limit for chunk in chunks)
        assert " ".join(chunks).split() == text.split()  # every token fits: none was cut


def test_default_max_chars_is_220() -> None:
    chunker = SentenceChunker()
    chunker.push("Okay. ")
    long_text = " ".join(["abcd"] * 60)  # 299 characters, no punctuation
    (chunk,) = chunker.push(long_text)
    assert len(chunk) <= 220
    assert chunk.endswith("abcd")


# ---------------------------------------------------------------- flush


def test_flush_returns_the_rest_and_clears() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Okay. And then") == ["Okay."]
    assert chunker.flush() == ["And then"]
    assert chunker.flush() == []


@pytest.mark.parametrize("leftover", ["", "   ", "...", ' "', " )", " \u2014", "!?", " *"])
def test_flush_drops_punctuation_only_leftovers(leftover: str) -> None:
    chunker = SentenceChunker()
    assert chunker.push("Sure, that works fine for me. ") == ["Sure, that works fine for me."]
    chunker.push(leftover)
    assert chunker.flush() == []


def test_flush_after_max_words_cut_keeps_the_rest() -> None:
    text = "One two three four five six seven eight nine ten eleven twelve ..."
    assert chunks_of(text, word_pieces) == [
        "One two three four five six",
        "seven eight nine ten eleven twelve ...",
    ]


def test_flush_on_fresh_chunker() -> None:
    assert SentenceChunker().flush() == []


def test_flush_keeps_short_leftover_with_letters_or_digits() -> None:
    chunker = SentenceChunker()
    chunker.push("Okay. ")
    chunker.push("42")
    assert chunker.flush() == ["42"]


# ---------------------------------------------------------------- properties

TEXTS = [
    "Of course you can, and here is how. First open the settings menu.",
    "Yes. That is right, and more.",
    "The quick brown fox jumps over the lazy dog and keeps running far away.",
    "Hello, my good friend, nice to see you. Yes. I agree. That is a good plan indeed.",
    "Okay. I met Dr. Smith and Mr. Jones at the clinic. Use tools, e.g. this one here.",
    "The city has 3.5 million people. Growth was 2.75 percent; that is fast!",
    "Well \u2014 I never! Did you really? (Yes, really.) \"Wow,\" she said: 'amazing'.",
    "No punctuation at all in this rather long reply that just keeps on going and going "
    "without ever stopping for breath because the model forgot how sentences work " * 3,
    "Short.",
    "A",
    "",
    "Multiple   spaces\tand\ttabs, and\nnew lines. Here\n\nis more text. The end...",
    "Numbers: 1, 2, 3. Lists: a; b; c. Times: 10:30 or 11:45 p.m. tonight, okay?",
]


def assert_words_kept(text: str, chunks: list[str]) -> None:
    """Joined chunks give the input's words; only a punctuation-only tail may be dropped."""
    words, kept = text.split(), " ".join(chunks).split()
    assert kept == words[: len(kept)], text
    assert not any(ch.isalnum() for word in words[len(kept) :] for ch in word), text


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize(
    "config",
    [
        None,
        ChunkerConfig(max_chars=30),
        ChunkerConfig(first_chunk_max_words=0, min_words=1),
        ChunkerConfig(first_chunk_min_words=1, first_chunk_max_words=2, min_words=8),
    ],
    ids=["default", "max30", "nomax", "tight"],
)
def test_chunks_reproduce_the_words(text: str, config: ChunkerConfig | None) -> None:
    for split in SPLITTERS:
        pushed, flushed = stream(split(text), config)
        chunks = [c for batch in pushed for c in batch] + flushed
        assert " ".join(chunks).split() == text.split()
        for chunk in chunks:
            assert chunk
            assert chunk == chunk.strip()
        assert len(flushed) <= 1
        if config is not None and config.max_chars == 30:
            assert all(len(c) <= 30 for c in chunks)


@pytest.mark.parametrize("text", TEXTS)
def test_chunking_does_not_depend_on_delta_size_for_small_deltas(text: str) -> None:
    expected = chunks_of(text, char_pieces)
    for seed in range(5):
        assert chunks_of(text, functools.partial(small_pieces, seed=seed)) == expected
    assert chunks_of(text, word_pieces) == expected


def test_random_texts_reproduce_the_words() -> None:
    rng = random.Random(1234)
    vocab = ["alpha", "b", "Dr.", "e.g.", "3.5", "x,", "yes.", "no!", "why?", "so;", "\u2014"]
    for _ in range(200):
        text = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 40)))
        for split in (char_pieces, word_pieces, lambda t: small_pieces(t, rng.randint(0, 99))):
            chunks = chunks_of(text, split, ChunkerConfig(max_chars=rng.randint(10, 60)))
            assert_words_kept(text, chunks)


# ---------------------------------------------------------------- written forms and markdown


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
@pytest.mark.parametrize(
    "sentence",
    [
        "It costs $4.50 at the shop today.",
        "Please ask Dr. Smith about it today.",
        "Pi is roughly 3.14 in most cases.",
        "Take one, e.g. this one over here.",
        "That is U.S. law for everyone here.",
        "Please see example.com/a.b for more details.",
        "Just write to ann@example.com for help.",
        "Let us meet at 3:45 pm near the station.",
        "The talk starts at 11:30 a.m. sharp tomorrow.",
        "The launch is set for Nov. 30 in Florida.",
    ],
)
def test_written_forms_are_not_split(split: Splitter, sentence: str) -> None:
    # As the first chunk (where clauses and phrases may also end it) and as a later one.
    assert chunks_of(sentence, split, ChunkerConfig(first_chunk_max_words=0)) == [sentence]
    assert chunks_of("Okay. " + sentence + " Done.", split) == ["Okay.", sentence, "Done."]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_a_newline_ends_a_chunk(split: Splitter) -> None:
    text = "Sure! Here is a plan:\n\n## Tips\n- Drink water\n- Sleep\nThat is all, enjoy."
    assert chunks_of(text, split) == [
        "Sure!",
        "Here is a plan:",
        "## Tips",
        "- Drink water",
        "- Sleep",
        "That is all, enjoy.",
    ]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_list_numbers_are_not_sentence_ends(split: Splitter) -> None:
    text = "Okay.\n1. Drink water\n2. Sleep well. Really.\n10. Eat greens"
    assert chunks_of(text, split) == [
        "Okay.",
        "1. Drink water",
        "2. Sleep well. Really.",
        "10. Eat greens",
    ]
    assert chunks_of("1. Drink water\n2. Sleep", split) == ["1. Drink water", "2. Sleep"]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_markup_only_lines_make_no_chunk(split: Splitter) -> None:
    text = (
        "Okay.\n\n---\n\n| Site | Price |\n|:---|---:|\n| Louvre | 22 |\n\n"
        "```python\nprint(1)\n```\n***\n**\n> \nThe end.\n```"
    )
    assert chunks_of(text, split) == [
        "Okay.",
        "| Site | Price |",
        "| Louvre | 22 |",
        "print(1)",
        "The end.",
    ]


@pytest.mark.parametrize("split", SPLITTERS, ids=SPLITTER_IDS)
def test_markdown_emphasis_after_a_mark_still_ends_it(split: Splitter) -> None:
    text = "**Of course you can:** here is how it works. And _that is important._ Keep it in mind."
    assert chunks_of(text, split) == [
        "**Of course you can:**",
        "here is how it works.",
        "And _that is important._",
        "Keep it in mind.",
    ]
