"""Soak: the measured capacity of sessions for a long while, with barge-ins and reconnects.

Starts Ray and the app in this process, then keeps `--sessions` conversations going for
`--minutes`. Each conversation is a chain of connections: every connection speaks a few
Piper-spoken questions in real time, one of them interrupted by another question while its reply
plays (a barge-in), then hangs up and reconnects with the resume token from `session.created`,
so the next connection goes on with the same conversation (every fourth starts afresh). Every
10 s the resident memory (RSS) of every Serve replica's process, and of Serve's HTTP proxy, is
read. Passes when no turn failed, every resume was granted, and each process's memory stayed
within +-10% of its value at minute 2 (after warm-up) to the end. Writes a section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.voice_to_voice import QUESTIONS, _pct, _turn_rows, _write_section
from dandelion.eval.server import free_port

ROOT = Path(__file__).resolve().parents[1]
WARM_UP_S = 120.0  # memory is compared from here on: models and caches settle before it
TOLERANCE = 0.10


class ReplicaMemory(threading.Thread):
    """RSS (MiB) of each live Serve replica's process, every `period_s`, keyed by replica."""

    def __init__(self, period_s: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.period_s = period_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._halt = threading.Event()

    def read(self) -> dict[str, float]:
        """Ray names each worker process after its actor (`ray::ServeReplica:APP:DEPLOYMENT`):
        found by that title, without Ray's state API (it needs the dashboard)."""
        import psutil

        found: dict[str, float] = {}
        for process in psutil.process_iter(["pid", "cmdline", "memory_info"]):
            title = " ".join(process.info["cmdline"] or [])
            if process.info["memory_info"] is None:
                continue
            if title.startswith("ray::ServeReplica:"):
                deployment = title.split()[0].split(":")[-1].split(".")[0]
            elif title.startswith("ray::ProxyActor"):  # Serve's HTTP proxy: it buffers sockets
                deployment = "HTTP proxy"
            else:
                continue
            found[f"{deployment} (pid {process.info['pid']})"] = (
                process.info["memory_info"].rss / 2**20
            )
        return found

    def run(self) -> None:
        started = time.monotonic()
        while not self._halt.wait(self.period_s):
            try:
                self.samples.append((time.monotonic() - started, self.read()))
            except Exception as exc:  # the state API is best effort under load
                print(f"memory sample skipped: {exc}", flush=True)

    def stop(self) -> None:
        self._halt.set()
        self.join()


@dataclass
class Tally:
    connections: int = 0
    turns: int = 0
    failed: int = 0
    interrupted: int = 0
    resumes: int = 0
    resumes_refused: int = 0
    busy: int = 0  # connections refused as server_busy, then retried after the hint
    v2v_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _finished_turns(events: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(inputs spoken, inputs that got no reply, replies cut by a barge-in)."""
    spoken = sum(1 for e in events if e["type"] == "client.input_started")
    replied = {
        e["turn_id"]
        for e in events
        if e["type"] == "response.done" and e["status"] in ("completed", "interrupted")
    }
    cut = sum(1 for e in events if e["type"] == "response.interrupted")
    return spoken, max(0, spoken - len(replied)), cut


async def _conversation(
    url: str, index: int, utterances: list[Any], deadline: float, tally: Tally
) -> None:
    from dandelion_client.file_mode import run_file_session

    await asyncio.sleep(index * 1.3)  # people do not all start at once
    token: str | None = None
    n = 0
    while time.monotonic() < deadline:
        n += 1
        if n % 4 == 1:
            token = None  # a new conversation now and then
        first, second, interruption = (
            utterances[(index + n + k) % len(utterances)] for k in (0, 1, 2)
        )
        try:
            recorder = await run_file_session(
                url,
                [first],
                interrupt=interruption,
                interrupt_after_s=1.0,
                listen_to_end=False,
                reply_timeout_s=90,
                resume_token=token,
            )
            recorder2 = None
            created = recorder.first("session.created") or {}
            if token is not None:
                tally.resumes += 1
                if not created.get("resumed"):
                    tally.resumes_refused += 1
            token = created.get("resume_token") or token
            recorder2 = await run_file_session(
                url, [second], listen_to_end=False, reply_timeout_s=90, resume_token=token
            )
            tally.resumes += 1
            created2 = recorder2.first("session.created") or {}
            if not created2.get("resumed"):
                tally.resumes_refused += 1
            token = created2.get("resume_token") or None  # each token is good for the next one
        except Exception as exc:  # counted, and the chain goes on with a new conversation
            tally.errors.append(f"{type(exc).__name__}: {exc}")
            tally.failed += 1
            token = None
            continue
        for rec in (recorder, recorder2):
            tally.connections += 1
            tally.busy += sum(1 for e in rec.events if e["type"] == "client.server_busy")
            spoken, failed, cut = _finished_turns(rec.events)
            tally.turns += spoken
            tally.failed += failed
            tally.interrupted += cut
            tally.v2v_ms += [row["v2v"] for row in _turn_rows(rec.events)]


async def _soak(url: str, sessions: int, utterances: list[Any], seconds: float) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(_conversation(url, i, utterances, deadline, tally) for i in range(sessions))
    )
    return tally


def memory_drift(
    samples: list[tuple[float, dict[str, float]]],
) -> dict[str, tuple[float, float, float, float]]:
    """Per replica: (MiB at warm-up end, at the end, min and max after warm-up)."""
    after = [(t, m) for t, m in samples if t >= WARM_UP_S]
    if not after:
        return {}
    result = {}
    for label in after[0][1]:
        values = [m[label] for _, m in after if label in m]
        result[label] = (values[0], values[-1], min(values), max(values))
    return result


def memory_by_minute(
    samples: list[tuple[float, dict[str, float]]], every_min: int = 4
) -> tuple[list[int], dict[str, list[float]]]:
    """Per replica, its RSS (MiB) at minute 2 and every `every_min` minutes after: whether it
    levels off or keeps growing, which the end points alone do not say."""
    marks: list[int] = []
    series: dict[str, list[float]] = {}
    minute = WARM_UP_S // 60
    for t, memory in samples:
        if t >= minute * 60:
            marks.append(int(minute))
            for label, value in memory.items():
                series.setdefault(label, []).append(value)
            minute += every_min
    if marks and samples[-1][0] > marks[-1] * 60:
        marks.append(round(samples[-1][0] / 60))  # the end
        for label, value in samples[-1][1].items():
            series.setdefault(label, []).append(value)
    return marks, series


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--sessions", type=int, default=2, help="the measured capacity")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import ray
    from dandelion_client.file_mode import Utterance
    from ray import serve

    from dandelion.config import AppSettings
    from dandelion.serve.app import APP_NAME, build_app
    from dandelion.tools.machine import describe_machine
    from dandelion.tools.say import Speaker

    workdir = Path(tempfile.mkdtemp(prefix="dandelion-soak-"))
    speaker = Speaker()
    utterances = [
        Utterance.load(speaker.say(text, workdir / f"q{i}.wav")) for i, text in enumerate(QUESTIONS)
    ]
    settings = AppSettings.model_validate(
        {
            "session_store": {"sqlite_path": str(workdir / "sessions.sqlite3")},
            # One place more than the conversations: a reconnect may come before the gateway
            # has released the connection it replaces.
            "security": {"max_sessions_per_replica": args.sessions + 1},
        }
    )
    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    url = f"ws://127.0.0.1:{port}/v1/session"
    memory = ReplicaMemory()
    memory.start()
    started = time.monotonic()
    try:
        tally = asyncio.run(_soak(url, args.sessions, utterances, args.minutes * 60))
    finally:
        memory.stop()
        serve.shutdown()
        ray.shutdown()
    elapsed = time.monotonic() - started
    drift = memory_drift(memory.samples)
    print(tally, drift, flush=True)
    report = _report(args, tally, drift, elapsed, describe_machine())
    _write_section(Path(args.output), "## Soak", report + _series(memory.samples))
    steady = all(abs(end - start) <= TOLERANCE * start for start, end, _, _ in drift.values())
    ok = tally.failed == 0 and tally.resumes_refused == 0 and steady and bool(drift)
    return 0 if ok else 1


def _report(
    args: Any,
    tally: Tally,
    drift: dict[str, tuple[float, float, float, float]],
    elapsed: float,
    machine: str,
) -> str:
    rows = [
        "| replica | RSS at 2 min (MiB) | at the end | min | max | change |",
        "|---|---|---|---|---|---|",
    ]
    for label, (start, end, low, high) in sorted(drift.items()):
        rows.append(
            f"| {label} | {start:.0f} | {end:.0f} | {low:.0f} | {high:.0f} "
            f"| {100 * (end - start) / start:+.1f}% |"
        )
    v2v = tally.v2v_ms
    latency = f"{_pct(v2v, 0.5):.0f} / {_pct(v2v, 0.95):.0f} ms" if v2v else "n/a"
    errors = "; ".join(sorted(set(tally.errors))[:5]) or "none"
    return (
        f"## Soak\n\nMeasured {datetime.date.today()} on {machine}, by "
        f"`benchmarks/soak.py --minutes {args.minutes:g} --sessions {args.sessions}` "
        f"({elapsed / 60:.1f} min): {args.sessions} conversations at once (the measured capacity), "
        "each a chain of connections that speak a question, barge in on its reply with another, "
        "hang up, and resume the conversation with the token from `session.created` to ask one "
        "more; every fourth connection starts a new conversation. "
        f"Connections {tally.connections}, turns {tally.turns}, failed {tally.failed}, "
        f"barge-ins {tally.interrupted}, resumes {tally.resumes} (refused "
        f"{tally.resumes_refused}), refused as busy and retried {tally.busy}, "
        f"voice-to-voice p50 / p95 {latency}; client errors: {errors}. "
        "Replica memory (RSS, sampled every 10 s) from minute 2 to the end (pass: within "
        f"+-{TOLERANCE:.0%}):\n\n" + "\n".join(rows) + "\n"
    )


def _series(samples: list[tuple[float, dict[str, float]]]) -> str:
    marks, series = memory_by_minute(samples)
    if not marks:
        return ""
    rows = [
        "| replica | " + " | ".join(f"{m} min" for m in marks) + " |",
        "|---|" + "---|" * len(marks),
    ]
    for label, values in sorted(series.items()):
        rows.append(f"| {label} | " + " | ".join(f"{v:.0f}" for v in values) + " |")
    return "\nRSS (MiB) along the run:\n\n" + "\n".join(rows) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
