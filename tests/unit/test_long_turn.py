"""Long turns: transcribed a piece at a time, cut between words, every word kept."""

from __future__ import annotations

import asyncio

import numpy as np

from dandelion.long_turn import TurnPieces, quietest_point_ms
from dandelion.protocol import events as ev
from tests.unit.session_harness import Harness, ScriptedStages


def test_the_cut_is_the_quietest_frame() -> None:
    rate = 16_000
    audio = np.full(rate * 3, 5_000, dtype=np.int16)
    gap = slice(int(1.6 * rate), int(1.6 * rate) + 1_024)  # 64 ms between two words
    audio[gap] = 3
    assert quietest_point_ms(audio, 10_000, rate) in (11_600, 11_632)
    assert quietest_point_ms(audio[:10], 500, rate) == 500  # too short to judge


def test_pieces_come_due_one_at_a_time_and_add_up() -> None:
    pieces = TurnPieces(piece_ms=12_000)
    pieces.reset(1_000)
    assert pieces.search_window(12_000) is None
    window = pieces.search_window(13_000)
    assert window == (9_700, 12_700)
    assert pieces.start(11_000) == (1_000, 11_000)
    assert pieces.search_window(30_000) is None  # one in flight
    pieces.done(" First part. ")
    assert (pieces.rest_start_ms, pieces.prefix) == (11_000, "First part.")
    pieces.start(22_000)
    pieces.abandon()  # failed: its audio stays in the rest
    assert pieces.rest_start_ms == 11_000 and pieces.search_window(23_500) is not None
    pieces.reset(40_000)
    assert pieces.prefix == "" and pieces.rest_start_ms == 40_000


def test_a_forty_second_turn_keeps_every_word() -> None:
    async def test() -> None:
        stages = ScriptedStages(
            transcripts=["Remember pineapple.", "Then the day went on.", "What was the word?"]
        )
        h = Harness(stages, turn={"detection": "silence", "partial_interval_ms": 0})
        await h.start()
        await h.speak(32_000)
        await h.silence(640)
        (final,) = h.events(ev.TranscriptFinal)
        text = final.text  # type: ignore[attr-defined]
        assert text == "Remember pineapple. Then the day went on. What was the word?"
        longest_s = max(stages.heard_audio) / 2 / 16_000
        assert longest_s < 20  # each piece within Whisper's window, the rest too
        assert len(stages.heard_audio) == 3
        user = h.session.conversation.messages[0]["content"]
        assert user == text
        await h.close()

    asyncio.run(test())
