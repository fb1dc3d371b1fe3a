"""A suite's scores summed up: the aggregate metrics, a Markdown table, JSON, and the deltas
against a baseline run. Pure: the caller writes the files."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dandelion.errors import SettingsError
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
    """The suite's metrics, in the order of the table (docs/evaluation.md defines each).
    Scenarios whose run was cut short (no server, a lost connection) are left out of every
    metric but the first two."""
    not_run = [s for s in scores if s.aborted]
    scores = [s for s in scores if not s.aborted]
    turns = [t for _, t in _turns(scores)]
    speech = [t for t in turns if t.kind == "speech"]
    expected = [t for t in turns if not t.ignored]
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
    # Answers that need something said in an earlier turn of the same conversation.
    recalled = [t for s, t in _turns(scores) if "memory" in s.tags and t.correct is not None]
    lengths = [t.reply_s for t in turns if t.reply_s is not None]
    symbols = [t for t in turns if t.symbols]
    too_long = sum(1 for t in turns if t.too_long)
    missed_barge = sum(1 for t in turns if t.barge_in_missed)
    passed = sum(1 for s in scores if s.passed)

    def stage(name: str) -> float | None:
        """p50 of one server timing over the replies whose voice-to-voice was measured, in s."""
        values = [t.server_timings[name] / 1000 for t in turns if name in t.server_timings]
        return _pct(values, 50)

    causes = ", ".join(f"{c}: {false_barge.count(c)}" for c in sorted(set(false_barge)))
    return [
        Metric("scenarios_passed", "scenarios passed", passed, "",
               f"of {len(scores) + len(not_run)}", "higher"),
        Metric("scenarios_not_run", "scenarios not run to their end", len(not_run), ""),
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
        # Where the time goes (the server's response.done timings; docs/protocol.md).
        Metric("asr_p50", "server: ASR time p50", stage("asr_ms"), "s", "", ""),
        Metric("llm_ttft_p50", "server: LLM time to first token p50", stage("llm_ttft_ms"),
               "s", "", ""),
        Metric("tts_first_audio_p50", "server: TTS time to first audio p50",
               stage("tts_first_audio_ms"), "s", "", ""),
        Metric("first_audio_ready_p50", "server: first audio ready after speech end p50",
               stage("first_audio_ready_ms"), "s",
               "replies start during the pause, before the end of turn is decided", ""),
        Metric("barge_in_p50", "barge-in time to silence p50", _pct(barge, 50), "s",
               f"{len(barge)} interruptions"),
        Metric("barge_in_p95", "barge-in time to silence p95", _pct(barge, 95), "s"),
        Metric("barge_ins_missed", "interruptions not heard", missed_barge, ""),
        Metric("false_barge_ins", "false barge-ins (by cause)", len(false_barge), "", causes),
        Metric("replies_to_non_speech", "replies to non-speech",
               sum(1 for t in non_speech if t.answered), "", f"of {len(non_speech)} sounds"),
        Metric("phantom_turns_answered", "turns nobody spoke, answered (echo, noise)", phantoms,
               "", f"in {sum(1 for s in scores if s.phantom_answered)} scenarios"),
        Metric("backchannels_answered", "backchannels answered as turns",
               sum(1 for t in backchannels if t.answered), "", f"of {len(backchannels)}"),
        Metric("answers_correct", "answers correct",
               100 * sum(1 for t in checked if t.correct) / len(checked) if checked else None,
               "%", f"{sum(1 for t in checked if t.correct)} of {len(checked)}", "higher"),
        Metric("memory_kept", "answers from memory correct",
               100 * sum(1 for t in recalled if t.correct) / len(recalled) if recalled else None,
               "%", f"{sum(1 for t in recalled if t.correct)} of {len(recalled)} "
               "(scenarios tagged memory)", "higher"),
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
        words = sum(t.reference_words or 0 for t in score.turns)
        errors = sum(t.word_errors or 0 for t in score.turns if t.reference_words)
        wer = f"{100 * errors / words:.0f}%" if words else ""
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
    """The results file: `info`, whether every scenario ran to its end, the metrics, and each
    scenario's score (what `--compare` reads back)."""
    return {
        **info,
        "complete": not any(s.aborted for s in scores),
        "metrics": {m.key: m.value for m in metrics},
        "metric_details": {m.key: m.detail for m in metrics},
        "scenarios": [
            {
                "name": s.name,
                "tags": s.tags,
                "passed": s.passed,
                "aborted": s.aborted,
                "failures": s.all_failures(),
                "phantom_turns": s.phantom_turns,
                "turns": [asdict(t) for t in s.turns],
            }
            for s in scores
        ],
    }


def check_baseline(data: Any, source: str) -> dict[str, Any]:
    """`data` if it is a results.json of this bench; SettingsError saying what is off if not."""
    metrics = data.get("metrics") if isinstance(data, dict) else None
    scenarios = data.get("scenarios") if isinstance(data, dict) else None
    if not isinstance(metrics, dict) or not isinstance(scenarios, list):
        raise SettingsError(f"{source}: not a results.json of `dandelion eval` (no metrics)")
    for key, value in metrics.items():
        if value is not None and not isinstance(value, int | float):
            raise SettingsError(f"{source}: metric {key!r} is {value!r}, not a number")
    for scenario in scenarios:
        if not isinstance(scenario, dict) or not isinstance(scenario.get("name"), str):
            raise SettingsError(f"{source}: a scenario without a name")
    return dict(data)


def deltas(now: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    """Each metric's value now minus its baseline (None where either is missing)."""
    old = baseline["metrics"]
    return {
        key: value - old[key] if value is not None and old.get(key) is not None else None
        for key, value in now["metrics"].items()
    }


def compare(now: dict[str, Any], baseline: dict[str, Any]) -> str:
    """A Markdown table of each metric's baseline, value now and delta, then what makes the two
    runs hard to compare (another suite, other scenarios, a run cut short) and the scenarios
    whose result changed."""
    specs = {m.key: m for m in aggregate([])}
    lines = ["| metric | baseline | now | delta | |", "|---|---|---|---|---|"]
    for key, diff in deltas(now, baseline).items():
        spec = specs.get(key)
        if spec is None:
            continue
        shown = [
            Metric(key, "", v, spec.unit).shown()
            for v in (baseline["metrics"].get(key), now["metrics"][key])
        ]
        delta, verdict = "", ""
        if diff is not None:
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
    notes = []
    if baseline.get("suite") != now.get("suite"):
        notes.append(
            f"- the baseline is suite {baseline.get('suite')!r}, this run {now.get('suite')!r}"
        )
    names = {s["name"] for s in now["scenarios"]}
    before = {s["name"]: s.get("passed") for s in baseline["scenarios"]}
    if names != set(before):
        notes.append(
            f"- other scenarios: {len(set(before) - names)} only in the baseline, "
            f"{len(names - set(before))} only in this run"
        )
    for label, run in (("the baseline", baseline), ("this run", now)):
        if run.get("complete") is False:
            notes.append(f"- {label} did not run every scenario to its end")
    changed = [
        f"- {s['name']}: {'now passes' if s['passed'] else 'now fails'}"
        for s in now["scenarios"]
        if s["name"] in before and before[s["name"]] != s["passed"]
    ]
    if notes:
        lines += ["", "Not like for like:", *notes]
    if changed:
        lines += ["", "Changed:", *changed]
    return "\n".join(lines)
