"""Capacity: how many concurrent conversations one machine holds within its latency target.

Starts Ray and the app in this process (so it can read `serve.status()`), then steps the number
of concurrent sessions. Each session streams Piper-spoken questions in real time, turn after
turn, and stops each reply once received. For every step: voice-to-voice p50/p95 at the client,
failed turns, CPU and memory. The largest step whose p95 stays under twice the one-session p50
is the capacity. With --autoscale, the LLM and TTS deployments autoscale (1-2 replicas) and
their replica counts are recorded during the run. Writes a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.voice_to_voice import _pct, _turn_rows
from dandelion.eval.server import free_port as _free_port

ROOT = Path(__file__).resolve().parents[1]


class Sampler(threading.Thread):
    """CPU %, memory and replica counts every second while the load runs."""

    def __init__(self, serve: Any) -> None:
        super().__init__(daemon=True)
        self._serve = serve
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        psutil.cpu_percent()
        while not self._halt.wait(1.0):
            replicas: dict[str, int] = {}
            try:
                status = self._serve.status()
                for app in status.applications.values():
                    for name, deployment in app.deployments.items():
                        replicas[name] = int(sum(deployment.replica_states.values()))
            except Exception:  # status is best effort while replicas change
                pass
            self.samples.append(
                {
                    "t": time.monotonic(),
                    "cpu": psutil.cpu_percent(),
                    "mem_gib": psutil.virtual_memory().used / 2**30,
                    "replicas": replicas,
                }
            )

    def stop(self) -> None:
        self._halt.set()
        self.join()


def autoscaled_settings(target_ongoing_requests: float) -> Any:
    """The default app with LLM and TTS autoscaling between 1 and 2 replicas, quickly."""
    from dandelion.config import AutoscalingSettings, DeploymentSettings

    scaling = AutoscalingSettings(
        min_replicas=1,
        max_replicas=2,
        target_ongoing_requests=target_ongoing_requests,
        upscale_delay_s=2,
        downscale_delay_s=10,
    )
    scaled = DeploymentSettings(autoscaling=scaling, max_ongoing_requests=4)
    settings = unlimited_settings()
    deployments = settings.deployments.model_copy(update={"llm": scaled, "tts": scaled})
    return settings.model_copy(update={"deployments": deployments})


def unlimited_settings() -> Any:
    """The default app without its admission limit (the measured capacity, 2 sessions): a
    benchmark that steps past the capacity must not be refused at it."""
    from dandelion.config import AppSettings

    return AppSettings.model_validate({"security": {"max_sessions_per_replica": 64}})


def _v2v_ms(events: list[dict[str, Any]]) -> tuple[list[float], int, int]:
    """Voice-to-voice per completed turn, and (turns, failed turns) of one session."""
    values = [row["v2v"] for row in _turn_rows(events)]
    turns = sum(1 for e in events if e["type"] == "client.input_started")
    return values, turns, turns - len(values)


async def _step(url: str, sessions: int, utterances: list[Any], turns: int) -> list[Any]:
    from dandelion_client.file_mode import run_file_session

    async def one(index: int) -> Any:
        await asyncio.sleep(index * 0.7)  # people do not all start talking at once
        chosen = [utterances[(index + k) % len(utterances)] for k in range(turns)]
        return await run_file_session(url, chosen, listen_to_end=False, reply_timeout_s=90)

    return list(await asyncio.gather(*(one(i) for i in range(sessions)), return_exceptions=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", default="1,2,3,4,6")
    parser.add_argument("--turns", type=int, default=4, help="turns per session per step")
    parser.add_argument("--autoscale", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import ray
    from dandelion_client.file_mode import Utterance
    from ray import serve

    from benchmarks.voice_to_voice import QUESTIONS, _write_section
    from dandelion.serve.app import APP_NAME, build_app
    from dandelion.tools.machine import describe_machine as _machine
    from dandelion.tools.say import Speaker

    settings = (
        autoscaled_settings(target_ongoing_requests=1) if args.autoscale else unlimited_settings()
    )
    workdir = Path(tempfile.mkdtemp(prefix="dandelion-capacity-"))
    speaker = Speaker()
    utterances = [
        Utterance.load(speaker.say(text, workdir / f"q{i}.wav")) for i, text in enumerate(QUESTIONS)
    ]
    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    url = f"ws://127.0.0.1:{port}/v1/session"
    asyncio.run(_step(url, 1, utterances, 2))  # warm-up
    rows, timeline = [], []
    sampler = Sampler(serve)
    sampler.start()
    started = time.monotonic()
    try:
        for sessions in [int(s) for s in args.steps.split(",")]:
            step_start = time.monotonic()
            results = asyncio.run(_step(url, sessions, utterances, args.turns))
            values: list[float] = []
            turns = failed = 0
            for result in results:
                if isinstance(result, BaseException):
                    turns += args.turns
                    failed += args.turns
                    continue
                v, t, f = _v2v_ms(result.events)
                values += v
                turns += t
                failed += f
            during = [s for s in sampler.samples if s["t"] >= step_start]
            row = {
                "sessions": sessions,
                "turns": turns,
                "failed": failed,
                "p50": _pct(values, 0.5) if values else float("nan"),
                "p95": _pct(values, 0.95) if values else float("nan"),
                "cpu": statistics.mean(s["cpu"] for s in during) if during else 0.0,
                "mem": max(s["mem_gib"] for s in during) if during else 0.0,
            }
            rows.append(row)
            print(row, flush=True)
        if args.autoscale:
            time.sleep(25)  # idle: let the deployments scale back down
    finally:
        sampler.stop()
        serve.shutdown()
        ray.shutdown()
    for sample in sampler.samples:
        timeline.append((sample["t"] - started, sample["replicas"]))
    _report(args, rows, timeline, _machine(), _write_section)
    return 0


def _report(
    args: Any, rows: list[dict[str, Any]], timeline: list[Any], machine: str, write: Any
) -> None:
    base = rows[0]["p50"]
    fits = [r["sessions"] for r in rows if r["p95"] < 2 * base and r["failed"] == 0]
    lines = [
        "| sessions | turns | failed | v2v p50 (ms) | v2v p95 (ms) | CPU (%) | memory used (GiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['sessions']} | {r['turns']} | {r['failed']} | {r['p50']:.0f} | {r['p95']:.0f} "
            f"| {r['cpu']:.0f} | {r['mem']:.1f} |"
        )
    mode = "autoscaling LLM and TTS (1-2 replicas)" if args.autoscale else "one replica each"
    heading = "## Capacity" + (" with autoscaling" if args.autoscale else "")
    text = (
        f"{heading}\n\nMeasured {datetime.date.today()} on {machine}, by "
        f"`benchmarks/capacity.py{' --autoscale' if args.autoscale else ''}`: concurrent sessions "
        f"each speaking {args.turns} questions in real time, {mode}. Capacity (largest step with "
        f"p95 under twice the one-session p50 of {base:.0f} ms and no failed turn): "
        f"**{max(fits) if fits else 0} sessions**.\n\n" + "\n".join(lines) + "\n"
    )
    if args.autoscale:
        counts = []
        last: dict[str, int] = {}
        for t, replicas in timeline:
            shown = {k: v for k, v in replicas.items() if k in ("LLM", "TTS")}
            if shown and shown != last:
                counts.append(f"| {t:.0f} | {shown.get('LLM', '')} | {shown.get('TTS', '')} |")
                last = shown
        text += (
            "\nReplica counts over the run (from `serve.status()`, one line per change):\n\n"
            "| t (s) | LLM replicas | TTS replicas |\n|---|---|---|\n" + "\n".join(counts) + "\n"
        )
    print(text)
    write(Path(args.output), heading + "\n", text)


if __name__ == "__main__":
    raise SystemExit(main())
