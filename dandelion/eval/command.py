"""`dandelion eval`: build a suite's audio, run it against a server, score it, write the results.

Exit status: 0 when the suite ran (whatever its scores: it is a bench, not a test), 2 when it
could not (a suite that does not load, a server that does not start, no server at `--url`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import fnmatch
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from dandelion.errors import DandelionError
from dandelion.eval.metrics import ScenarioScore
from dandelion.eval.report import aggregate, compare, metrics_table, scenarios_table, to_json
from dandelion.eval.scenario import Scenario, Suite, builtin_suites, load_suite
from dandelion.tools.machine import describe_machine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite",
        default="smoke",
        help=f"a built-in suite ({', '.join(builtin_suites())}) or a suite YAML file",
    )
    parser.add_argument("--url", help="a running server's WebSocket URL (default: start one)")
    parser.add_argument("--config", help="settings YAML for the server started here")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these scenarios (shell patterns allowed; repeatable)",
    )
    parser.add_argument("--tag", action="append", default=[], help="run only scenarios tagged so")
    parser.add_argument(
        "--sessions", type=int, default=1, help="scenarios run at once (default 1: latency)"
    )
    parser.add_argument("--output", help="results folder (default eval-results/SUITE-TIME)")
    parser.add_argument("--compare", metavar="BASELINE.json", help="print deltas to a results.json")
    parser.add_argument("--asr-model", help="Whisper (CTranslate2) folder that transcribes replies")
    parser.add_argument("--keep-audio", action="store_true", help="keep built audio and replies")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the unscored first turn")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")


def main(args: argparse.Namespace) -> int:
    try:
        suite, folder = load_suite(args.suite)
        scenarios = _select(suite, args.scenario, args.tag)
    except DandelionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for scenario in scenarios:
            print(f"{scenario.name:40} {' '.join(scenario.tags):30} {scenario.description}")
        return 0
    if args.sessions < 1:
        print("error: --sessions must be at least 1", file=sys.stderr)
        return 2
    baseline = None
    if args.compare:
        try:
            baseline = json.loads(Path(args.compare).read_text())
        except (OSError, ValueError) as exc:
            print(f"error: --compare {args.compare}: {exc}", file=sys.stderr)
            return 2
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    output = Path(args.output or f"eval-results/{suite.suite}-{stamp}")
    output.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, suite, folder, scenarios, output, baseline)
    except DandelionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _select(suite: Suite, names: list[str], tags: list[str]) -> list[Scenario]:
    chosen = [
        s
        for s in suite.scenarios
        if (not names or any(fnmatch.fnmatch(s.name, n) for n in names))
        and (not tags or set(tags) & set(s.tags))
    ]
    if not chosen:
        raise DandelionError(f"no scenario of suite {suite.suite!r} matches {names or tags}")
    return chosen


def _run(
    args: argparse.Namespace,
    suite: Suite,
    folder: Path,
    scenarios: list[Scenario],
    output: Path,
    baseline: dict[str, Any] | None,
) -> int:
    from dandelion.eval.bench import Bench, Judge, build_suite

    audio_dir = output / "audio" if args.keep_audio else Path(tempfile.mkdtemp(prefix="dndl-eval-"))
    built = build_suite(suite, folder, scenarios, audio_dir)
    judge = Judge(args.asr_model)
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from dandelion.eval.server import LocalServer

            print("starting a server (dandelion serve) ...", flush=True)
            url = stack.enter_context(LocalServer(args.config))
        timelines = stack.enter_context((output / "timelines.jsonl").open("w"))
        bench = Bench(
            url, built, judge, timelines, args.sessions, audio_dir if args.keep_audio else None
        )
        try:
            asyncio.run(bench.run(scenarios, warm_up=not args.no_warm_up))
        except KeyboardInterrupt:
            print(f"\ninterrupted: the results of {len(bench.scores)} finished scenarios follow")
    server = args.url or f"dandelion serve{' --config ' + args.config if args.config else ''}"
    order = {s.name: i for i, s in enumerate(scenarios)}
    scores = sorted(bench.scores, key=lambda score: order[score.name])
    _write_results(args, suite, scores, server, output, baseline)
    return 0


def _write_results(
    args: argparse.Namespace,
    suite: Suite,
    scores: list[ScenarioScore],
    server: str,
    output: Path,
    baseline: dict[str, Any] | None,
) -> None:
    metrics = aggregate(scores)
    info = {
        "suite": suite.suite,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "server": server,
        "sessions": args.sessions,
    }
    results = to_json(scores, metrics, info)
    (output / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = [
        f"# `dandelion eval --suite {suite.suite}`",
        "",
        f"{info['date']}, {info['machine']}; server: {server}; {args.sessions} session(s) at once.",
        "",
        metrics_table(metrics),
        "",
        scenarios_table(scores),
    ]
    print()
    print(metrics_table(metrics))
    if baseline is not None:
        deltas = compare(results, baseline)
        markdown += ["", f"## Against {args.compare}", "", deltas]
        print(f"\nagainst {args.compare}:\n{deltas}")
    (output / "results.md").write_text("\n".join(markdown) + "\n")
    print(f"\nresults: {output / 'results.md'}, {output / 'results.json'}")
