"""A suite's scores summed up: the aggregate metrics, a Markdown table, JSON, and the deltas
against a baseline run. Pure: the caller writes the files."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dandelion.eval.metrics import ScenarioScore, TurnScore


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    value: float | None
    unit: str  # "%", "s" or "" (a count)
    detail: str = ""
    better: str = "lower"  # "lower", "higher" or "" (neither)

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit == "%":
            return f"{self.value:.1f}%"
        if self.unit == "s":
            return f"{self.value:.2f} s"
        return f"{self.value:g}"


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _turns(scores: list[ScenarioScore]) -> list[tuple[ScenarioScore, TurnScore]]:
    return [(s, t) for s in scores for t in s.turns]


def aggregate(scores: list[ScenarioScore]) -> list[Metric]:
    """The suite's metrics, in the order of the table (docs/evaluation.md defines each)."""
    turns = [t for _, t in _turns(scores)]
    speech = [t for t in turns if t.kind == "speech"]
    expected = [t for _, t in _turns(scores) if not t.ignored]
    ref_words = sum(t.reference_words or 0 for t in turns)
    errors = sum(t.word_errors or 0 for t in turns if t.reference_words)
    endpoint = [t.endpoint_delay_s for t in turns if t.endpoint_delay_s is not None]
    v2v = [t.voice_to_voice_s for t in turns if t.voice_to_voice_s is not None]
    barge = [t.barge_in_s for t in turns if t.barge_in_s is not None]
    false_barge = [t.false_barge_in for t in turns if t.false_barge_in]
    non_speech = [t for t in turns if t.kind == "non_speech"]
    backchannels = [t for t in turns if t.kind == "backchannel"]
    phantoms = sum(s.phantom_answered for s in scores)
    checked = [t for t in turns if t.correct is not None]
    lengths = [t.reply_s for t in turns if t.reply_s is not None]
    symbols = [t for t in turns if t.symbols]
    too_long = sum(1 for t in turns if t.too_long)
    missed_barge = sum(1 for t in turns if t.barge_in_missed)
    passed = sum(1 for s in scores if s.passed)
    causes = ", ".join(f"{c}: {false_barge.count(c)}" for c in sorted(set(false_barge)))
    return [
        Metric("scenarios_passed", "scenarios passed", passed, "", f"of {len(scores)}", "higher"),
        Metric("wer", "word error rate", 100 * errors / ref_words if ref_words else None, "%",
               f"{errors} errors in {ref_words} words"),
        Metric("false_cut_ins", "false cut-ins (an utterance split into turns)",
               sum(t.cut_ins for t in turns), "",
               f"in {sum(1 for t in turns if t.cut_ins)} of {len(speech)} spoken turns"),
        Metric("missed_turns", "missed turns", sum(1 for t in turns if t.missed), "",
               f"of {len(expected)} turns to be taken"),
        Metric("endpoint_delay_p50", "endpoint delay p50", _pct(endpoint, 50), "s",
               f"{len(endpoint)} turns"),
        Metric("endpoint_delay_p95", "endpoint delay p95", _pct(endpoint, 95), "s"),
        Metric("voice_to_voice_p50", "voice-to-voice p50", _pct(v2v, 50), "s", f"{len(v2v)} turns"),
        Metric("voice_to_voice_p95", "voice-to-voice p95", _pct(v2v, 95), "s"),
        Metric("barge_in_p50", "barge-in time to silence p50", _pct(barge, 50), "s",
               f"{len(barge)} interruptions"),
        Metric("barge_in_p95", "barge-in time to silence p95", _pct(barge, 95), "s"),
        Metric("barge_ins_missed", "interruptions not heard", missed_barge, ""),
        Metric("false_barge_ins", "false barge-ins (backchannel, echo, noise)", len(false_barge),
               "", causes),
        Metric("replies_to_non_speech", "replies to non-speech",
               sum(1 for t in non_speech if t.answered), "", f"of {len(non_speech)} sounds"),
        Metric("phantom_turns_answered", "turns nobody spoke, answered (echo, noise)", phantoms,
               "", f"in {sum(1 for s in scores if s.phantom_answered)} scenarios"),
        Metric("backchannels_answered", "backchannels answered as turns",
               sum(1 for t in backchannels if t.answered), "", f"of {len(backchannels)}"),
        Metric("answers_correct", "answers correct",
               100 * sum(1 for t in checked if t.correct) / len(checked) if checked else None,
               "%", f"{sum(1 for t in checked if t.correct)} of {len(checked)}", "higher"),
        Metric("reply_length_p50", "spoken reply length p50", _pct(lengths, 50), "s",
               f"{len(lengths)} replies", ""),
        Metric("reply_length_max", "spoken reply length max", max(lengths, default=None), "s",
               "", ""),
        Metric("replies_too_long", "replies longer than expected", too_long, ""),
        Metric("symbols_read_aloud", "symbols read aloud", sum(len(t.symbols) for t in turns),
               "", f"in {len(symbols)} replies"),
    ]  # fmt: skip


def metrics_table(metrics: list[Metric]) -> str:
    lines = ["| metric | value | |", "|---|---|---|"]
    lines += [f"| {m.label} | {m.shown()} | {m.detail} |" for m in metrics]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def scenarios_table(scores: list[ScenarioScore]) -> str:
    lines = [
        "| scenario | turns taken | WER | endpoint (s) | voice-to-voice (s) | result |",
        "|---|---|---|---|---|---|",
    ]
    for score in scores:
        taken = "/".join(str(len(t.server_turns)) for t in score.turns)
        wers = [t.wer for t in score.turns if t.wer is not None]
        wer = f"{100 * sum(wers) / len(wers):.0f}%" if wers else ""
        endpoint = ", ".join(
            _seconds(t.endpoint_delay_s) for t in score.turns if t.endpoint_delay_s is not None
        )
        v2v = ", ".join(
            _seconds(t.voice_to_voice_s) for t in score.turns if t.voice_to_voice_s is not None
        )
        result = "pass" if score.passed else "; ".join(score.all_failures())
        lines.append(f"| {score.name} | {taken} | {wer} | {endpoint} | {v2v} | {_cell(result)} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_json(
    scores: list[ScenarioScore], metrics: list[Metric], info: dict[str, Any]
) -> dict[str, Any]:
    return {
        **info,
        "metrics": {m.key: m.value for m in metrics},
        "metric_details": {m.key: m.detail for m in metrics},
        "scenarios": [
            {
                "name": s.name,
                "tags": s.tags,
                "passed": s.passed,
                "failures": s.all_failures(),
                "phantom_turns": s.phantom_turns,
                "turns": [asdict(t) for t in s.turns],
            }
            for s in scores
        ],
    }


def compare(now: dict[str, Any], baseline: dict[str, Any]) -> str:
    """A Markdown table of each metric's baseline, value now and delta, then the scenarios whose
    result changed."""
    labels = {m.key: m for m in aggregate([])}
    lines = ["| metric | baseline | now | delta | |", "|---|---|---|---|---|"]
    for key, value in now["metrics"].items():
        old = baseline.get("metrics", {}).get(key)
        spec = labels.get(key)
        if spec is None:
            continue
        shown = [Metric(key, "", v, spec.unit).shown() for v in (old, value)]
        delta, verdict = "", ""
        if old is not None and value is not None:
            diff = value - old
            delta = (
                f"{diff:+.2f}"
                if spec.unit == "s"
                else f"{diff:+.1f}"
                if spec.unit
                else f"{diff:+g}"
            )
            if diff and spec.better:
                verdict = "better" if (diff < 0) == (spec.better == "lower") else "worse"
        lines.append(f"| {spec.label} | {shown[0]} | {shown[1]} | {delta} | {verdict} |")
    before = {s["name"]: s["passed"] for s in baseline.get("scenarios", [])}
    changed = [
        f"- {s['name']}: {'now passes' if s['passed'] else 'now fails'}"
        for s in now["scenarios"]
        if s["name"] in before and before[s["name"]] != s["passed"]
    ]
    return "\n".join(lines + (["", *changed] if changed else []))
