"""`dandelion eval`: build a suite's audio, run it against a server, score it, write the results.

Exit status: 0 when every scenario ran to its end (whatever the scores: it is a bench, not a
test); 1 when the results were written but the run was cut short (Ctrl-C or SIGTERM, or the
server lost on the way: results.json says `"complete": false`); 2 when it could not run (a bad
option, a suite or settings file that does not load, a server that does not start or answer).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import fnmatch
import json
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from dandelion.errors import DandelionError
from dandelion.eval.metrics import ScenarioScore
from dandelion.eval.report import (
    aggregate,
    check_baseline,
    compare,
    deltas,
    metrics_table,
    scenarios_table,
    to_json,
)
from dandelion.eval.scenario import Scenario, Suite, builtin_suites, load_suite
from dandelion.tools.machine import describe_machine


class UsageError(DandelionError):
    """An option that cannot work, said before anything runs."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite",
        default="smoke",
        help=f"a built-in suite ({', '.join(builtin_suites())}) or a suite YAML file",
    )
    parser.add_argument(
        "--url", help="a running server's WebSocket URL, ws://HOST:PORT/v1/session (default: "
        "start one here)"
    )  # fmt: skip
    parser.add_argument("--config", help="settings YAML for the server started here (not --url)")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only scenarios whose name matches (shell patterns; repeatable: any of them)",
    )
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        help="run only scenarios with this tag (repeatable: any of them; with --scenario: both)",
    )
    parser.add_argument(
        "--sessions", type=int, default=1, help="scenarios run at once (default 1: latency)"
    )
    parser.add_argument("--output", help="results folder (default eval-results/SUITE-TIME)")
    parser.add_argument(
        "--compare", metavar="BASELINE.json", help="deltas against an earlier results.json"
    )
    parser.add_argument(
        "--asr-model", help="Whisper (CTranslate2) folder that transcribes the replies"
    )
    parser.add_argument(
        "--keep-audio", action="store_true", help="keep the audio sent and the replies as WAVs"
    )
    parser.add_argument("--no-warm-up", action="store_true", help="skip the unscored first turn")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")


def main(args: argparse.Namespace) -> int:
    try:
        with _sigterm_as_interrupt():
            return _main(args)
    except DandelionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    suite, folder = load_suite(args.suite)
    scenarios = _select(suite, args.scenario, args.tag)
    if args.list:
        for scenario in scenarios:
            print(f"{scenario.name:40} {' '.join(scenario.tags):30} {scenario.description}")
        return 0
    _check_options(args)
    baseline = _baseline(args.compare) if args.compare else None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    output = Path(args.output or f"eval-results/{suite.suite}-{stamp}")
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output}: a file is there, not a folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output {output}: {exc.strerror}") from exc
    return _run(args, suite, folder, scenarios, output, baseline)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (`timeout`, `kill`, a CI cancel) ends the run as Ctrl-C does: the finished
    scenarios are written and the server started here is stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _select(suite: Suite, names: list[str], tags: list[str]) -> list[Scenario]:
    chosen = [
        s
        for s in suite.scenarios
        if (not names or any(fnmatch.fnmatch(s.name, n) for n in names))
        and (not tags or set(tags) & set(s.tags))
    ]
    if not chosen:
        wanted = [f"--scenario {n}" for n in names] + [f"--tag {t}" for t in tags]
        raise UsageError(f"no scenario of suite {suite.suite!r} matches {' '.join(wanted)}")
    return chosen


def _check_options(args: argparse.Namespace) -> None:
    if args.sessions < 1:
        raise UsageError("--sessions must be at least 1")
    if args.url is not None:
        if args.config:
            raise UsageError("--config sets up the server started here; with --url, configure "
                             "that server itself")  # fmt: skip
        if not args.url.startswith(("ws://", "wss://")):
            raise UsageError(
                f"--url {args.url!r}: a WebSocket URL is needed, such as "
                "ws://127.0.0.1:8000/v1/session (the session route of `dandelion serve`)"
            )
    elif args.config:
        from dandelion.profiles import profile_settings

        profile_settings("cpu", args.config)  # a settings file that cannot load fails here
    if args.asr_model:
        from dandelion.backends.asr.faster_whisper import resolve_whisper_model

        try:
            resolve_whisper_model(args.asr_model)
        except DandelionError as exc:
            raise UsageError(f"--asr-model {args.asr_model}: {exc}") from exc


def _baseline(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--compare {path}: {exc}") from exc
    return check_baseline(data, f"--compare {path}")


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
    built = build_suite(suite, folder, scenarios, audio_dir, warm_up=not args.no_warm_up)
    judge = Judge(args.asr_model)
    interrupted = False
    server = args.url or f"dandelion serve{' --config ' + args.config if args.config else ''}"
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from dandelion.eval.server import LocalServer

            print("starting a server (dandelion serve) ...", flush=True)
            url = stack.enter_context(LocalServer(args.config))
        timelines = stack.enter_context((output / "timelines.jsonl").open("w"))
        keep = audio_dir if args.keep_audio else None
        bench = Bench(url, built, judge, timelines, args.sessions, keep)
        try:
            asyncio.run(bench.run(scenarios, warm_up=not args.no_warm_up))
        except KeyboardInterrupt:
            interrupted = True
            print(f"\ninterrupted: writing the {len(bench.scores)} scenarios that finished")
        # Written before the server stops: a second Ctrl-C while it stops loses nothing.
        order = {s.name: i for i, s in enumerate(scenarios)}
        scores = sorted(bench.scores, key=lambda score: order[score.name])
        complete = _write_results(args, suite, scores, len(scenarios), server, output, baseline)
    return 0 if complete and not interrupted else 1


def _write_results(
    args: argparse.Namespace,
    suite: Suite,
    scores: list[ScenarioScore],
    total: int,
    server: str,
    output: Path,
    baseline: dict[str, Any] | None,
) -> bool:
    """Writes results.json and results.md, prints the table; whether all `total` scenarios ran
    to their end."""
    metrics = aggregate(scores)
    info = {
        "suite": suite.suite,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "server": server,
        "sessions": args.sessions,
    }
    results = to_json(scores, metrics, info)
    results["complete"] = results["complete"] and len(scores) == total
    heading = [
        f"# `dandelion eval --suite {suite.suite}`",
        "",
        f"{info['date']}, {info['machine']}; server: {server}; {args.sessions} session(s) at once.",
    ]
    if not results["complete"]:
        heading += ["", "**Incomplete run**: not every scenario ran to its end (below)."]
    markdown = [*heading, "", metrics_table(metrics), "", scenarios_table(scores)]
    print()
    print(metrics_table(metrics))
    if baseline is not None:
        table = compare(results, baseline)
        results["compared_to"] = {"baseline": args.compare, "deltas": deltas(results, baseline)}
        markdown += ["", f"## Against {args.compare}", "", table]
        print(f"\nagainst {args.compare}:\n{table}")
    (output / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (output / "results.md").write_text("\n".join(markdown) + "\n")
    print(f"\nresults: {output / 'results.md'}, {output / 'results.json'}")
    return bool(results["complete"])
