"""`dandelion eval`: build a suite's audio, run it against a server, score it, write the results.

Exit status: 0 when the suite ran (whatever its scores: it is a bench, not a test), 2 when it
could not (a suite that does not load, a server that does not start, no server at `--url`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import fnmatch
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dandelion.errors import DandelionError
from dandelion.eval.metrics import ScenarioScore, score_scenario
from dandelion.eval.report import aggregate, compare, metrics_table, scenarios_table, to_json
from dandelion.eval.scenario import Scenario, Suite, builtin_suites, load_suite
from dandelion.tools.machine import describe_machine

WARM_UP = "Hello, can you hear me?"


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
    from dandelion.eval.build import BuiltTurn, build_turn
    from dandelion.eval.voices import VoiceBank

    audio_dir = output / "audio" if args.keep_audio else Path(tempfile.mkdtemp(prefix="dndl-eval-"))
    audio_dir.mkdir(parents=True, exist_ok=True)
    voices = VoiceBank()
    built: dict[str, list[BuiltTurn]] = {}
    started = time.monotonic()
    live = sys.stdout.isatty()
    print(f"building the audio of {len(scenarios)} scenarios ...", flush=True)
    for number, scenario in enumerate(scenarios, 1):
        if live:
            print(f"\r  {number}/{len(scenarios)} {scenario.name:50}", end="", flush=True)
        built[scenario.name] = [
            build_turn(
                turn,
                folder=folder,
                default_voice=suite.voice,
                workdir=audio_dir,
                voices=voices,
                name=f"{scenario.name}-{index + 1}",
            )
            for index, turn in enumerate(scenario.turns)
        ]
    if live:
        print("\r" + " " * 60 + "\r", end="")
    print(f"  built in {time.monotonic() - started:.0f} s", flush=True)
    warm_up = None
    if not args.no_warm_up:
        warm_up = _warm_up_scenario(voices, audio_dir)
    judge = _Judge(args.asr_model)
    if args.url:
        scores = asyncio.run(
            _run_all(args.url, scenarios, built, args.sessions, judge, warm_up, output, args)
        )
        server = args.url
    else:
        from dandelion.eval.server import LocalServer

        print("starting a server (dandelion serve) ...", flush=True)
        with LocalServer(args.config) as url:
            scores = asyncio.run(
                _run_all(url, scenarios, built, args.sessions, judge, warm_up, output, args)
            )
        server = f"dandelion serve{' --config ' + args.config if args.config else ''}"
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
    if baseline is not None:
        deltas = compare(results, baseline)
        markdown += ["", f"## Against {args.compare}", "", deltas]
    (output / "results.md").write_text("\n".join(markdown) + "\n")
    print()
    print(metrics_table(metrics))
    if baseline is not None:
        print(f"\nagainst {args.compare}:\n{deltas}")
    print(f"\nresults: {output / 'results.md'}, {output / 'results.json'}")
    return 0


def _warm_up_scenario(voices: Any, audio_dir: Path) -> tuple[Scenario, list[Any]]:
    from dandelion.eval.build import build_turn

    scenario = Scenario.model_validate({"name": "warm-up", "turns": [{"say": WARM_UP}]})
    built = [
        build_turn(
            scenario.turns[0],
            folder=audio_dir,
            default_voice="piper",
            workdir=audio_dir,
            voices=voices,
            name="warm-up",
        )
    ]
    return scenario, built


class _Judge:
    """The bench's own ASR: transcribes each reply as it played, to hear what was said. It uses
    faster-whisper's long-form transcription (30 s windows in turn), not the server's
    short-window path: replies can last a minute."""

    def __init__(self, model_path: str | None) -> None:
        from faster_whisper import WhisperModel

        from dandelion.backends.asr.faster_whisper import resolve_whisper_model

        path = resolve_whisper_model(model_path)
        self._model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=2)

    def transcribe(self, audio: npt.NDArray[np.float32]) -> str:
        if not len(audio):
            return ""
        segments, _ = self._model.transcribe(
            audio, language="en", beam_size=5, condition_on_previous_text=False
        )
        return " ".join(segment.text.strip() for segment in segments)


async def _run_all(
    url: str,
    scenarios: list[Scenario],
    built: dict[str, Any],
    sessions: int,
    judge: _Judge,
    warm_up: tuple[Scenario, list[Any]] | None,
    output: Path,
    args: argparse.Namespace,
) -> list[ScenarioScore]:
    from dandelion.eval.runner import ScenarioRun

    if warm_up is not None:
        print("warming up the server (one unscored turn) ...", flush=True)
        await ScenarioRun(url, *warm_up).run()
    gate = asyncio.Semaphore(sessions)
    finished = 0
    timelines = (output / "timelines.jsonl").open("w")

    async def one(scenario: Scenario) -> ScenarioScore:
        nonlocal finished
        async with gate:
            began = time.monotonic()
            timeline, played = await ScenarioRun(url, scenario, built[scenario.name]).run()
            for turn, audio in played.items():
                timeline.heard[turn] = await asyncio.to_thread(judge.transcribe, audio)
                if args.keep_audio:
                    _save_reply(output / "audio" / f"{scenario.name}-reply-{turn}.wav", audio)
            score = score_scenario(scenario, timeline)
        finished += 1
        timelines.write(json.dumps({"scenario": scenario.name, **timeline.to_dict()}) + "\n")
        timelines.flush()
        print(_progress(finished, len(scenarios), score, time.monotonic() - began), flush=True)
        return score

    try:
        return list(await asyncio.gather(*(one(s) for s in scenarios)))
    finally:
        timelines.close()


def _save_reply(path: Path, audio: npt.NDArray[np.float32]) -> None:
    import soundfile as sf

    sf.write(str(path), audio, 16_000, subtype="PCM_16")


def _progress(number: int, total: int, score: ScenarioScore, seconds: float) -> str:
    taken = "/".join(str(len(t.server_turns)) for t in score.turns)
    v2v = [t.voice_to_voice_s for t in score.turns if t.voice_to_voice_s is not None]
    latency = f" v2v {', '.join(f'{v:.2f}' for v in v2v)} s" if v2v else ""
    verdict = "pass" if score.passed else "FAIL " + "; ".join(score.all_failures())
    if len(verdict) > 300:
        verdict = verdict[:297] + "..."
    return (
        f"[{number:>{len(str(total))}}/{total}] {score.name} ({seconds:.0f} s): "
        f"turns {taken}{latency} | {verdict}"
    )
