"""One model stage on its own, through Dandelion's own backend classes: load time, time to first
output, and throughput. For the GPU stacks (vLLM, Coqui TTS, Whisper on CUDA) on whatever
machine runs it; each runs in the environment that has its stack installed.

    .venv-vllm/bin/python benchmarks/backends.py llm --profile gpu    # vLLM
    .venv-coqui/bin/python benchmarks/backends.py tts --profile gpu   # Coqui XTTS-v2
    .venv/bin/python benchmarks/backends.py asr --profile gpu         # Whisper on CUDA

`--settings S.yaml` (AppSettings, as `dandelion serve --config` takes) is merged over the
profile, e.g. to point at other weights or run the CPU builds. The section written
to docs/benchmarks.md names the backend, the device (the GPU's name when there is one) and the
machine; `--note` adds a line (say what the weights were, e.g. random test weights).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.voice_to_voice import _write_section  # noqa: E402
from dandelion.config import AppSettings  # noqa: E402
from dandelion.profiles import PROFILES, profile_settings  # noqa: E402
from dandelion.tools.machine import describe_machine as _machine  # noqa: E402

PROMPTS = [
    "What is the capital of France?",
    "Tell me a short story about a dragon.",
    "Why is the sky blue?",
    "Name three fruits.",
]
SENTENCES = [
    "Hello! The capital of France is Paris, a city on the river Seine.",
    "It is famous for its museums, its cafes, and the Eiffel Tower.",
    "Would you like to know more about its history?",
]


def _device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return "CPU only"


def _name(model: str | None) -> str:
    return Path(model).name if model else "bundled model"


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _bench_llm(settings: AppSettings, rounds: int) -> tuple[str, list[tuple[str, str]]]:
    from dandelion.actors.llm import LLMActor

    started = time.perf_counter()
    actor = LLMActor(settings.llm.model_dump())
    load_s = time.perf_counter() - started
    ttft: list[float] = []
    rates: list[float] = []
    for i in range(rounds):
        messages = [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
        started = time.perf_counter()
        first = None
        deltas = 0
        async for _delta in actor.stream(messages):
            deltas += 1
            first = first or time.perf_counter()
        done = time.perf_counter()
        if first is not None:
            ttft.append(first - started)
            if deltas > 1 and done > first:
                rates.append((deltas - 1) / (done - first))
    rows = [
        ("load (s)", f"{load_s:.1f}"),
        (
            "time to first token, p50 / p95 (ms)",
            f"{_p(ttft, 0.5) * 1e3:.0f} / {_p(ttft, 0.95) * 1e3:.0f}",
        ),
        ("generation, median (deltas/s)", f"{statistics.median(rates):.1f}" if rates else "-"),
    ]
    shutdown = getattr(actor.model, "shutdown", None)
    if shutdown is not None:
        shutdown()  # vLLM's engine process, before the interpreter tears down
    return f"LLM `{settings.llm.backend}` ({_name(settings.llm.model_path)})", rows


async def _bench_tts(settings: AppSettings, rounds: int) -> tuple[str, list[tuple[str, str]]]:
    from dandelion.actors.tts import TTSActor

    started = time.perf_counter()
    actor = TTSActor(settings.tts.model_dump())
    load_s = time.perf_counter() - started
    rate = await actor.sample_rate()
    first_chunk: list[float] = []
    rtf: list[float] = []
    for i in range(rounds):
        started = time.perf_counter()
        first = None
        samples = 0
        async for chunk in actor.synthesize(SENTENCES[i % len(SENTENCES)]):
            first = first or time.perf_counter()
            samples += len(chunk.pcm) // 2
        elapsed = time.perf_counter() - started
        if first is not None and samples:
            first_chunk.append(first - started)
            rtf.append(elapsed / (samples / rate))
    model = settings.tts.coqui.model if settings.tts.backend == "coqui" else settings.tts.voice_path
    rows = [
        ("load (s)", f"{load_s:.1f}"),
        (
            "first audio of a sentence, p50 / p95 (ms)",
            f"{_p(first_chunk, 0.5) * 1e3:.0f} / {_p(first_chunk, 0.95) * 1e3:.0f}",
        ),
        ("real-time factor, median (synthesis s per audio s)", f"{statistics.median(rtf):.2f}"),
    ]
    return f"TTS `{settings.tts.backend}` ({_name(model)})", rows


async def _bench_asr(settings: AppSettings, rounds: int) -> tuple[str, list[tuple[str, str]]]:
    import numpy as np
    from dandelion_client.audio import load_audio

    from dandelion.backends.asr.faster_whisper import FasterWhisperRecognizer

    speech = ROOT.parent / "shared" / "data" / "speech" / "jfk.flac"
    audio = load_audio(speech).astype(np.float32)
    started = time.perf_counter()
    recognizer = FasterWhisperRecognizer(settings.asr)
    load_s = time.perf_counter() - started
    times: list[float] = []
    text = ""
    for _ in range(rounds):
        started = time.perf_counter()
        text = recognizer.transcribe(audio).text
        times.append(time.perf_counter() - started)
    seconds = audio.size / 16_000
    rows = [
        ("load (s)", f"{load_s:.1f}"),
        (
            f"transcribe {seconds:.0f} s of speech, p50 / p95 (ms)",
            f"{_p(times, 0.5) * 1e3:.0f} / {_p(times, 0.95) * 1e3:.0f}",
        ),
        ("transcript", text[:60]),
    ]
    asr = settings.asr
    return f"ASR faster-whisper on {asr.device} {asr.compute_type} ({_name(asr.model_path)})", rows


async def _run(stage: str, settings: AppSettings, rounds: int) -> tuple[str, list[tuple[str, str]]]:
    bench = {"llm": _bench_llm, "tts": _bench_tts, "asr": _bench_asr}[stage]
    return await bench(settings, rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=("llm", "tts", "asr"))
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu", help="start from")
    parser.add_argument("--settings", help="AppSettings YAML merged over the profile")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--note", default="", help="a line under the table (weights, caveats)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()

    settings = profile_settings(args.profile, args.settings)
    print(f"loading the {args.stage} backend ...", flush=True)
    try:
        title, rows = asyncio.run(_run(args.stage, settings, args.rounds))
    except (ValueError, IndexError) as exc:  # no output at all: nothing to take statistics of
        print(f"the {args.stage} backend produced no output to measure: {exc}", file=sys.stderr)
        return 1
    device = _device()
    table = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    print(f"{title}, {device}")
    print("\n".join(table))
    heading = f"## Backend: {title}, {device}"
    today = datetime.date.today().isoformat()
    section = (
        f"{heading}\n\nMeasured {today} on {_machine()}, by `benchmarks/backends.py "
        f"{args.stage}` ({args.rounds} rounds, one process, nothing else running).\n\n"
        + "\n".join(table)
        + "\n"
        + (f"\n{args.note}\n" if args.note else "")
    )
    _write_section(Path(args.output), heading, section)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
