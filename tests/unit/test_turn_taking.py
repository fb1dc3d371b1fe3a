"""EndpointDetector driven by scripted VAD timelines (32 ms frames, time = stream position)."""

from __future__ import annotations

import pytest

from dandelion.turn_taking import (
    BargeIn,
    EndOfTurn,
    EndpointDetector,
    Pause,
    Resume,
    SpeechStart,
    TurnConfig,
    TurnDecision,
)

FRAME_MS = 32


def silence_config(**changes: object) -> TurnConfig:
    """A fixed end-of-turn silence (500 ms), speculative pause at 200 ms, unless changed."""
    fields: dict[str, object] = {"detection": "silence", "speculative_pause_ms": 200}
    return TurnConfig.model_validate({**fields, **changes})


SPEECH = 0.9
SILENCE = 0.05
SOFT = 0.4  # between the default silence_threshold (0.35) and speech_threshold (0.5)


class Timeline:
    """Feeds (probability, duration_ms) segments as 32 ms frames and records the decisions."""

    def __init__(self, config: TurnConfig | None = None) -> None:
        self.detector = EndpointDetector(config or silence_config())
        self.now_ms = 0
        self.decisions: list[tuple[int, TurnDecision]] = []

    def feed(
        self, segments: list[tuple[float, int]], *, responding: bool = False
    ) -> list[tuple[int, TurnDecision]]:
        """Returns the (frame_end_ms, decision) pairs these segments produced."""
        produced: list[tuple[int, TurnDecision]] = []
        for probability, duration_ms in segments:
            assert duration_ms % FRAME_MS == 0, "segments are whole frames"
            for _ in range(duration_ms // FRAME_MS):
                self.now_ms += FRAME_MS
                for decision in self.detector.update(
                    probability, self.now_ms, FRAME_MS, responding
                ):
                    produced.append((self.now_ms, decision))
        self.decisions.extend(produced)
        return produced


def only(decisions: list[tuple[int, TurnDecision]]) -> list[TurnDecision]:
    return [decision for _, decision in decisions]


# ---------------------------------------------------------------- speech start


def test_speech_start_after_min_speech_backdated_to_voiced_run() -> None:
    tl = Timeline()
    assert tl.feed([(SILENCE, 320)]) == []
    assert not tl.detector.speaking
    # Voiced frames end at 352, 384, 416: 416 - 320 = 96 ms = min_speech_ms.
    got = tl.feed([(SPEECH, 320)])
    assert got == [(416, SpeechStart(320))]
    assert tl.detector.speaking
    assert tl.detector.speech_start_ms == 320


def test_speech_start_exactly_at_min_speech_boundary() -> None:
    tl = Timeline()
    assert tl.feed([(SPEECH, 64)]) == []  # 64 ms < 96 ms
    assert tl.feed([(SPEECH, 32)]) == [(96, SpeechStart(0))]


def test_min_speech_zero_starts_on_first_voiced_frame() -> None:
    tl = Timeline(silence_config(min_speech_ms=0))
    tl.feed([(SILENCE, 64)])
    assert tl.feed([(SPEECH, 32)]) == [(96, SpeechStart(64))]


def test_short_blips_below_min_speech_are_ignored() -> None:
    tl = Timeline()
    got = tl.feed([(SPEECH, 64), (SILENCE, 32)] * 10 + [(SILENCE, 1000 // 32 * 32)])
    assert got == []
    assert not tl.detector.speaking
    assert tl.detector.speech_start_ms is None


def test_voiced_run_restarts_after_a_gap() -> None:
    tl = Timeline()
    # 64 ms blip, one silent frame, then a real run: start is the run's start, not the blip's.
    got = tl.feed([(SPEECH, 64), (SILENCE, 32), (SPEECH, 160)])
    assert only(got) == [SpeechStart(96)]
    assert got[0][0] == 96 + 96


def test_soft_probability_does_not_start_speech_while_idle() -> None:
    # Hysteresis only applies once speaking: idle needs speech_threshold.
    tl = Timeline()
    assert tl.feed([(SOFT, 1024)]) == []
    assert tl.feed([(SPEECH, 32), (SOFT, 64), (SPEECH, 64)]) == []


def test_speech_threshold_is_inclusive() -> None:
    tl = Timeline()
    assert only(tl.feed([(0.5, 96)])) == [SpeechStart(0)]


# ---------------------------------------------------------------- hysteresis and end of turn


def test_hysteresis_soft_frames_keep_speech_going() -> None:
    tl = Timeline()
    tl.feed([(SPEECH, 320)])
    # 2 s of probabilities between the thresholds: still speech, no Pause, no end of turn.
    assert tl.feed([(SOFT, 2048)]) == []
    assert tl.detector.speaking
    assert tl.detector.silence_ms(tl.now_ms) == 0
    last_voiced = tl.now_ms  # 2368
    got = tl.feed([(SILENCE, 1024)])
    assert only(got) == [Pause(0, last_voiced), EndOfTurn(0, last_voiced, last_voiced + 512)]


def test_silence_threshold_is_inclusive_for_speech() -> None:
    tl = Timeline()
    tl.feed([(SPEECH, 128)])
    assert tl.feed([(0.35, 1024)]) == []
    assert tl.detector.speaking


def test_end_of_turn_after_silence() -> None:
    tl = Timeline()
    tl.feed([(SILENCE, 64)])
    tl.feed([(SPEECH, 640)])  # voiced 64..704
    got = tl.feed([(SILENCE, 1024)])
    # Pause once silence >= 200 ms (first frame end at 704 + 224), EOT at >= 500 (704 + 512).
    assert got == [
        (928, Pause(64, 704)),
        (1216, EndOfTurn(start_ms=64, end_ms=704, decided_ms=1216)),
    ]
    assert not tl.detector.speaking
    assert tl.detector.silence_ms(tl.now_ms) == 0


def test_silence_ms_counts_from_last_voiced_frame() -> None:
    tl = Timeline()
    tl.feed([(SPEECH, 320)])
    tl.feed([(SILENCE, 96)])
    assert tl.detector.silence_ms(tl.now_ms) == 96
    assert tl.detector.silence_ms(tl.now_ms + 10) == 106


def test_new_turn_after_end_of_turn() -> None:
    tl = Timeline()
    tl.feed([(SPEECH, 320), (SILENCE, 640)])
    assert [type(d) for d in only(tl.decisions)] == [SpeechStart, Pause, EndOfTurn]
    start = tl.now_ms
    got = tl.feed([(SPEECH, 320), (SILENCE, 640)])
    assert only(got) == [
        SpeechStart(start),
        Pause(start, start + 320),
        EndOfTurn(start, start + 320, start + 320 + 512),
    ]


# ---------------------------------------------------------------- speculative pause


def test_pause_once_then_resume_then_pause_and_end_of_turn() -> None:
    tl = Timeline()
    tl.feed([(SPEECH, 640)])  # 0..640
    got = tl.feed([(SILENCE, 320)])  # 640..960: one Pause at 640 + 224
    assert got == [(864, Pause(0, 640))]
    got = tl.feed([(SPEECH, 320)])  # 960..1280: Resume at the first voiced frame's start
    assert got == [(992, Resume(960))]
    got = tl.feed([(SILENCE, 1024)])
    assert got == [
        (1280 + 224, Pause(0, 1280)),
        (1280 + 512, EndOfTurn(0, 1280, 1280 + 512)),
    ]


def test_short_silence_below_pause_emits_nothing() -> None:
    tl = Timeline()
    tl.feed([(SPEECH, 320)])
    assert tl.feed([(SILENCE, 192), (SPEECH, 320), (SILENCE, 192), (SPEECH, 64)]) == []
    assert tl.detector.speaking


def test_soft_frame_after_pause_resumes() -> None:
    tl = Timeline()
    tl.feed([(SPEECH, 320), (SILENCE, 256)])
    assert [type(d) for d in only(tl.decisions)] == [SpeechStart, Pause]
    assert tl.feed([(SOFT, 32)]) == [(608, Resume(576))]


def test_speculative_pause_zero_emits_no_pause() -> None:
    tl = Timeline(silence_config(speculative_pause_ms=0))
    tl.feed([(SPEECH, 320)])
    got = tl.feed([(SILENCE, 300 // 32 * 32), (SPEECH, 96), (SILENCE, 1024)])
    assert only(got) == [EndOfTurn(0, 288 + 320 + 96, 288 + 320 + 96 + 512)]
    assert not any(isinstance(d, Pause | Resume) for d in only(tl.decisions))


def test_pause_and_end_of_turn_thresholds_in_one_frame_gives_only_end_of_turn() -> None:
    # Pause at 480, EOT at 500: frames land on 480 then 512.
    tl = Timeline(silence_config(speculative_pause_ms=480, end_of_turn_silence_ms=500))
    tl.feed([(SPEECH, 320)])
    got = tl.feed([(SILENCE, 1024)])
    assert got == [(320 + 480, Pause(0, 320)), (320 + 512, EndOfTurn(0, 320, 832))]
    tl2 = Timeline(silence_config(speculative_pause_ms=490, end_of_turn_silence_ms=500))
    tl2.feed([(SPEECH, 320)])
    assert only(tl2.feed([(SILENCE, 1024)])) == [EndOfTurn(0, 320, 832)]


# ---------------------------------------------------------------- barge-in


def test_barge_in_while_responding_after_min_speech() -> None:
    tl = Timeline()
    got = tl.feed([(SPEECH, 640)], responding=True)
    # SpeechStart at 96; voiced 192 ms (barge_in_min_speech_ms) reached at 192; once.
    assert got == [(96, SpeechStart(0)), (192, BargeIn(0))]
    got = tl.feed([(SILENCE, 1024)], responding=True)
    assert only(got) == [Pause(0, 640), EndOfTurn(0, 640, 1152)]


def test_no_barge_in_when_not_responding() -> None:
    tl = Timeline()
    tl.feed([(SPEECH, 1024), (SILENCE, 1024)], responding=False)
    assert not any(isinstance(d, BargeIn) for d in only(tl.decisions))


def test_no_barge_in_for_speech_shorter_than_threshold() -> None:
    tl = Timeline()
    got = tl.feed([(SPEECH, 160), (SILENCE, 1024)], responding=True)
    assert [type(d) for d in only(got)] == [SpeechStart, Pause, EndOfTurn]


def test_barge_in_once_per_speech_segment() -> None:
    tl = Timeline()
    first = tl.feed([(SPEECH, 640), (SILENCE, 256), (SPEECH, 640)], responding=True)
    assert [type(d) for d in only(first)] == [SpeechStart, BargeIn, Pause, Resume]
    tl.feed([(SILENCE, 640)], responding=True)
    assert isinstance(tl.decisions[-1][1], EndOfTurn)
    start = tl.now_ms
    second = tl.feed([(SPEECH, 640)], responding=True)
    assert second == [(start + 96, SpeechStart(start)), (start + 192, BargeIn(start))]


def test_barge_in_when_reply_starts_mid_speech() -> None:
    tl = Timeline()
    tl.feed([(SPEECH, 320)], responding=False)
    # Already 320 ms voiced: the first responding frame barges in.
    assert tl.feed([(SPEECH, 64)], responding=True) == [(352, BargeIn(0))]


def test_barge_in_with_speech_start_in_same_frame() -> None:
    tl = Timeline(silence_config(barge_in_min_speech_ms=64))
    assert tl.feed([(SPEECH, 96)], responding=True) == [
        (96, SpeechStart(0)),
        (96, BargeIn(0)),
    ]


def test_barge_in_counts_soft_frames_as_voiced() -> None:
    tl = Timeline()
    got = tl.feed([(SPEECH, 96), (SOFT, 128)], responding=True)
    assert got == [(96, SpeechStart(0)), (192, BargeIn(0))]


# ---------------------------------------------------------------- max turn, reconfigure


def test_max_turn_forces_end_of_turn() -> None:
    tl = Timeline(silence_config(max_turn_ms=1000))
    got = tl.feed([(SPEECH, 2048)])
    # 992 - 0 < 1000, 1024 - 0 >= 1000. Then a new segment starts at 1024 after min_speech.
    assert got == [
        (96, SpeechStart(0)),
        (1024, EndOfTurn(0, 1024, 1024)),
        (1120, SpeechStart(1024)),
        (2048, EndOfTurn(1024, 2048, 2048)),
    ]


def test_default_max_turn_is_two_minutes() -> None:
    tl = Timeline()
    got = tl.feed([(SPEECH, 120_000 // 32 * 32 + 64)])
    assert only(got)[:2] == [SpeechStart(0), EndOfTurn(0, 120_000, 120_000)]


def test_reconfigure_changes_end_of_turn_silence() -> None:
    tl = Timeline()
    tl.feed([(SPEECH, 320)])
    tl.detector.reconfigure(silence_config(end_of_turn_silence_ms=1000))
    got = tl.feed([(SILENCE, 2048)])
    assert only(got) == [Pause(0, 320), EndOfTurn(0, 320, 320 + 1024)]


def test_reconfigure_shorter_silence_ends_turn_on_next_frame() -> None:
    tl = Timeline(silence_config(end_of_turn_silence_ms=2000, speculative_pause_ms=0))
    tl.feed([(SPEECH, 320), (SILENCE, 640)])
    assert tl.detector.speaking
    tl.detector.reconfigure(silence_config(end_of_turn_silence_ms=300, speculative_pause_ms=0))
    assert tl.feed([(SILENCE, 32)]) == [(992, EndOfTurn(0, 320, 992))]


def test_same_input_gives_same_decisions() -> None:
    script = [(SILENCE, 96), (SPEECH, 480), (SILENCE, 256), (SOFT, 64), (SILENCE, 640)]
    a, b = Timeline(), Timeline()
    assert a.feed(script, responding=True) == b.feed(script, responding=True)


# ---------------------------------------------------------------- config validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"silence_threshold": 0.6, "speech_threshold": 0.5},
        {"silence_threshold": 0.0},
        {"silence_threshold": -0.1},
        {"speech_threshold": 1.0},
        {"end_of_turn_silence_ms": 0},
        {"end_of_turn_silence_ms": -100},
        {"min_speech_ms": -1},
        {"detection": "silence", "speculative_pause_ms": 500},
        {"detection": "silence", "speculative_pause_ms": 600},
        {"speculative_pause_ms": -1},
        {"detection": "silence", "end_of_turn_silence_ms": 100, "speculative_pause_ms": 200},
    ],
)
def test_invalid_turn_config_raises(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TurnConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"speculative_pause_ms": 0},
        {"speculative_pause_ms": 499},
        {"silence_threshold": 0.5, "speech_threshold": 0.5},
        {"min_speech_ms": 0},
        {"end_of_turn_silence_ms": 100, "speculative_pause_ms": 0},
        {"end_of_turn_silence_ms": 100},  # semantic: the fixed silence is not used
    ],
)
def test_valid_turn_config(kwargs: dict[str, float]) -> None:
    TurnConfig(**kwargs)  # type: ignore[arg-type]


def test_semantic_end_of_turn_waits_as_long_as_the_words_ask() -> None:
    from dandelion.end_of_turn import Completeness

    tl = Timeline(TurnConfig())  # semantic, medium eagerness
    tl.feed([(SPEECH, 640)])
    got = tl.feed([(SILENCE, 192)])
    assert [type(d) for _, d in got] == [Pause]  # at 160 ms: the words are judged now
    tl.detector.set_completeness(Completeness.INCOMPLETE)
    assert not tl.feed([(SILENCE, 2_240)])  # "... a table for": 2.5 s
    got = tl.feed([(SILENCE, 320)])
    ((at, end),) = [(ms, d) for ms, d in got if isinstance(d, EndOfTurn)]
    assert at - end.end_ms == 2_528  # the first frame past 2.5 s
    tl.feed([(SPEECH, 640)])
    tl.feed([(SILENCE, 192)])
    tl.detector.set_completeness(Completeness.COMPLETE)
    got = tl.feed([(SILENCE, 64)])
    assert any(isinstance(d, EndOfTurn) for _, d in got)  # 200 ms: ends at once
    tl.feed([(SPEECH, 640)])
    tl.feed([(SILENCE, 1_184)])  # nothing judged: the wait for a transcript
    assert tl.detector.end_of_turn_silence_ms() == 1_200
