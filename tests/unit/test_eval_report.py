"""A suite's metrics summed from hand-written scores, and the comparison with a baseline run."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dandelion.errors import SettingsError
from dandelion.eval.metrics import ScenarioScore, TurnScore
from dandelion.eval.report import (
    Metric,
    aggregate,
    check_baseline,
    compare,
    deltas,
    metrics_table,
    to_json,
)


def speech(index: int, **measured: Any) -> TurnScore:
    return TurnScore(index, "speech", answered=True, **measured)


def suite() -> list[ScenarioScore]:
    """Two scenarios: one clean, one where most things went wrong (one of each, or two)."""
    clean = ScenarioScore(
        "greeting",
        ["basic"],
        [
            speech(
                0,
                server_turns=[1],
                word_errors=1,
                reference_words=5,
                endpoint_delay_s=0.5,
                voice_to_voice_s=1.0,
                reply_s=2.0,
                correct=True,
                barge_in_s=0.4,
            )
        ],
    )
    troubled = ScenarioScore(
        "split",
        ["turns"],
        [
            speech(
                0,
                server_turns=[2, 3],
                word_errors=0,
                reference_words=5,
                cut_ins=1,
                endpoint_delay_s=1.1,
                voice_to_voice_s=2.0,
                reply_s=6.0,
                too_long=True,
                correct=False,
                symbols=["asterisk", "asterisk"],
                false_barge_in="backchannel",
                failures=["2 turns, expected 1"],
            ),
            speech(
                1,
                server_turns=[4],
                word_errors=0,
                reference_words=10,
                endpoint_delay_s=0.7,
                voice_to_voice_s=1.4,
                reply_s=3.0,
                false_barge_in="echo",
            ),
            TurnScore(2, "non_speech", server_turns=[5], answered=True, failures=["answered"]),
            TurnScore(3, "backchannel", server_turns=[6], answered=True, failures=["answered"]),
            TurnScore(4, "backchannel"),
        ],
        phantom_turns=2,
        phantom_answered=1,
        failures=["answered a turn nobody spoke"],
    )
    return [clean, troubled]


def by_key(metrics: list[Metric]) -> dict[str, Metric]:
    return {m.key: m for m in metrics}


def test_aggregate_counts_and_rates() -> None:
    metrics = by_key(aggregate(suite()))
    assert (metrics["scenarios_passed"].value, metrics["scenarios_passed"].detail) == (1, "of 2")
    # 1 error over 5 + 5 + 10 reference words.
    assert metrics["wer"].value == pytest.approx(5.0)
    assert metrics["wer"].detail == "1 errors in 20 words"
    assert metrics["false_cut_ins"].value == 1
    assert metrics["false_cut_ins"].detail == "in 1 of 3 spoken turns"
    assert metrics["missed_turns"].value == 0
    assert metrics["barge_ins_missed"].value == 0
    assert metrics["false_barge_ins"].value == 2
    assert metrics["false_barge_ins"].detail == "backchannel: 1, echo: 1"
    # The answered non-speech sound, and apart from it the answered phantom turn.
    assert metrics["replies_to_non_speech"].value == 1
    assert metrics["phantom_turns_answered"].value == 1
    assert metrics["backchannels_answered"].value == 1
    assert metrics["backchannels_answered"].detail == "of 2"
    assert metrics["answers_correct"].value == pytest.approx(50.0)
    assert metrics["replies_too_long"].value == 1
    assert metrics["symbols_read_aloud"].value == 2
    assert metrics["symbols_read_aloud"].detail == "in 1 replies"


def test_aggregate_percentiles_interpolate_between_turns() -> None:
    # numpy's linear percentile over three values: p95 lies 90% of the way from the 2nd to the 3rd.
    metrics = by_key(aggregate(suite()))
    assert metrics["endpoint_delay_p50"].value == pytest.approx(0.7)
    assert metrics["endpoint_delay_p95"].value == pytest.approx(0.7 + 0.9 * (1.1 - 0.7))
    assert metrics["voice_to_voice_p50"].value == pytest.approx(1.4)
    assert metrics["voice_to_voice_p95"].value == pytest.approx(1.4 + 0.9 * (2.0 - 1.4))
    assert metrics["barge_in_p50"].value == pytest.approx(0.4)
    assert metrics["reply_length_p50"].value == pytest.approx(3.0)
    assert metrics["reply_length_max"].value == pytest.approx(6.0)


def test_aggregate_of_nothing_measured_shows_not_available() -> None:
    metrics = by_key(aggregate([]))
    assert metrics["wer"].value is None
    assert metrics["endpoint_delay_p50"].shown() == "n/a"
    assert "| word error rate | n/a |" in metrics_table(aggregate([]))


def row(table: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is `label`."""
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def baseline_of(
    now: dict[str, Any], metrics: dict[str, float | None], passed: bool
) -> dict[str, Any]:
    """`now` as an earlier run: these metrics differ, and every scenario had result `passed`."""
    old = copy.deepcopy(now)
    old["metrics"].update(metrics)
    for scenario in old["scenarios"]:
        scenario["passed"] = passed
    return old


def test_compare_shows_deltas_and_verdicts() -> None:
    now = to_json(suite(), aggregate(suite()), {})
    baseline = baseline_of(
        now,
        {
            "scenarios_passed": 0,
            "wer": 10.0,
            "endpoint_delay_p50": 0.6,
            "reply_length_p50": 2.5,
            "answers_correct": None,
        },
        passed=False,
    )
    table = compare(now, baseline)
    assert row(table, "scenarios passed") == ["scenarios passed", "0", "1", "+1", "better"]
    assert row(table, "word error rate") == ["word error rate", "10.0%", "5.0%", "-5.0", "better"]
    assert row(table, "endpoint delay p50") == [
        "endpoint delay p50",
        "0.60 s",
        "0.70 s",
        "+0.10",
        "worse",
    ]
    # Reply length is neither better nor worse longer; a metric new since the baseline has no
    # delta; an unchanged one has a zero delta and no verdict.
    assert row(table, "spoken reply length p50")[3:] == ["+0.50", ""]
    assert row(table, "answers correct")[1:] == ["n/a", "50.0%", "", ""]
    assert row(table, "missed turns")[3:] == ["+0", ""]


def test_compare_lists_scenarios_whose_result_changed() -> None:
    now = to_json(suite(), aggregate(suite()), {})
    table = compare(now, baseline_of(now, {}, passed=False))
    # "greeting" failed in the baseline and passes now; "split" failed both times.
    assert table.endswith("\n\nChanged:\n- greeting: now passes")
    table = compare(now, baseline_of(now, {}, passed=True))
    assert table.endswith("\n\nChanged:\n- split: now fails")


def test_a_scenario_cut_short_is_counted_apart_and_marks_the_run_incomplete() -> None:
    lost = ScenarioScore("lost", [], [TurnScore(0, "speech", missed=True)], aborted="no server")
    scores = [*suite(), lost]
    metrics = by_key(aggregate(scores))
    assert (metrics["scenarios_passed"].value, metrics["scenarios_passed"].detail) == (1, "of 3")
    assert metrics["scenarios_not_run"].value == 1
    # Its turn, never spoken, is in no metric: the two scored scenarios alone.
    assert by_key(aggregate(suite()))["missed_turns"] == metrics["missed_turns"]
    results = to_json(scores, aggregate(scores), {})
    assert results["complete"] is False
    assert results["scenarios"][-1]["failures"] == ["not run to its end: no server"]


def test_compare_says_when_two_runs_are_not_like_for_like() -> None:
    now = to_json(suite(), aggregate(suite()), {"suite": "smoke"})
    other = to_json(suite()[:1], aggregate(suite()[:1]), {"suite": "mine"})
    other["complete"] = False
    table = compare(now, other)
    assert "- the baseline is suite 'mine', this run 'smoke'" in table
    assert "- other scenarios: 0 only in the baseline, 1 only in this run" in table
    assert "- the baseline did not run every scenario to its end" in table
    assert deltas(now, other)["scenarios_passed"] == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "not a results.json"),
        ({"metrics": {}}, "not a results.json"),
        ({"metrics": {"wer": "high"}, "scenarios": []}, "metric 'wer' is 'high'"),
        ({"metrics": {}, "scenarios": [{"passed": True}]}, "a scenario without a name"),
    ],
)
def test_a_baseline_must_be_a_results_file(data: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        check_baseline(data, "b.json")


def test_memory_kept_counts_answers_in_memory_scenarios_only() -> None:
    recall = ScenarioScore(
        "recall", ["memory"], [speech(0), speech(1, correct=True), speech(2, correct=False)]
    )
    metrics = by_key(aggregate([*suite(), recall]))
    assert metrics["memory_kept"].value == pytest.approx(50.0)
    assert metrics["memory_kept"].detail.startswith("1 of 2")
    assert metrics["answers_correct"].detail == "2 of 4"


def test_where_the_time_goes_comes_from_the_server_timings() -> None:
    timed = ScenarioScore(
        "timed",
        [],
        [
            speech(0, voice_to_voice_s=0.9, server_timings={"asr_ms": 300.0, "llm_ttft_ms": 200.0}),
            speech(1, voice_to_voice_s=1.1, server_timings={"asr_ms": 500.0, "llm_ttft_ms": 400.0}),
        ],
    )
    metrics = by_key(aggregate([timed]))
    assert metrics["asr_p50"].value == pytest.approx(0.4)
    assert metrics["llm_ttft_p50"].value == pytest.approx(0.3)
    assert metrics["tts_first_audio_p50"].value is None
