"""Autoscaling under a locust load: the LLM and TTS deployments scale up, then back down.

Starts Ray and the app in this process with autoscaling LLM and TTS deployments (1-2 replicas),
runs `loadtests/locustfile.py` headless against it (bounded users and time, loopback), samples
`serve.status()` every second through the load and the idle time after it, and writes the
replica-count timeline to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--idle", type=int, default=45, help="s to watch after the load")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import ray
    from ray import serve

    from benchmarks.capacity import Sampler, autoscaled_settings
    from benchmarks.voice_to_voice import _write_section
    from dandelion.eval.server import free_port as _free_port
    from dandelion.serve.app import APP_NAME, build_app
    from dandelion.tools.machine import describe_machine as _machine

    settings = autoscaled_settings(target_ongoing_requests=0.5)
    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    sampler = Sampler(serve)
    sampler.start()
    started = time.monotonic()
    try:
        locust = subprocess.run(
            [
                sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
                "--headless", "-u", str(args.users), "-r", "1", "-t", f"{args.seconds}s",
                "--only-summary", "--dandelion-url", f"ws://127.0.0.1:{port}/v1/session",
            ],
            capture_output=True,
            text=True,
            timeout=args.seconds + 120,
        )  # fmt: skip
        load_end = time.monotonic() - started
        time.sleep(args.idle)
    finally:
        sampler.stop()
        serve.shutdown()
        ray.shutdown()
    summary = [
        line for line in locust.stdout.splitlines() + locust.stderr.splitlines() if "voice" in line
    ]
    rows, last = [], None
    for sample in sampler.samples:
        replicas = sample["replicas"]
        shown = (replicas.get("LLM"), replicas.get("TTS"))
        if shown != last and None not in shown:
            rows.append(f"| {sample['t'] - started:.0f} | {shown[0]} | {shown[1]} |")
            last = shown
    peak = max(
        (max(s["replicas"].get("LLM", 0), s["replicas"].get("TTS", 0)) for s in sampler.samples),
        default=0,
    )
    text = (
        "## Autoscaling under a locust load\n\n"
        f"Measured {datetime.date.today()} on {_machine()}, by `python -m benchmarks.autoscale`: "
        f"{args.users} locust voice users for {args.seconds} s (load ended at {load_end:.0f} s), "
        "then idle; LLM and TTS autoscale between 1 and 2 replicas (target 0.5 ongoing requests, "
        "upscale delay 2 s, downscale delay 10 s). Replica counts from `serve.status()`, one row "
        f"per change; peak {peak}.\n\n"
        "| t (s) | LLM replicas | TTS replicas |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "locust summary (request type `voice`):\n\n```\n" + "\n".join(summary) + "\n```\n"
    )
    print(text)
    _write_section(Path(args.output), "## Autoscaling under a locust load\n", text)
    return 0 if locust.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
