"""Voice-to-voice latency: end of the person's speech to the first reply audio at the client.

Starts `dandelion serve` (or uses --url), streams Piper-spoken questions in real time through the
thin client's file mode, and writes a table with the per-stage breakdown to docs/benchmarks.md.
A benchmark, not a test: numbers vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PLAIN_HEADING = "## Voice-to-voice latency (embedded CPU models)"
VIDEO_HEADING = "## Voice-to-voice with the avatar on"
QUESTIONS = [
    "What is the capital of France?",
    "How many people live there?",
    "What is the largest ocean on Earth?",
    "Who wrote Romeo and Juliet?",
    "Why is the sky blue?",
    "What do bees make?",
    "How far away is the moon?",
    "What is the tallest mountain in the world?",
    "Can you name a famous painter?",
    "What is two plus two?",
    "What language do people speak in Brazil?",
]
# (label, key in response.done timings or "v2v" for the client-side measure)
COLUMNS = [
    ("voice-to-voice at the client", "v2v"),
    ("server: first audio sent", "first_audio_sent_ms"),
    ("end-of-turn silence (decided)", "end_of_turn_delay_ms"),
    ("transcript ready", "transcript_ms"),
    ("LLM first token", "llm_first_token_ms"),
    ("first audio synthesized", "first_audio_ready_ms"),
    ("LLM time to first token (its call to first token)", "llm_ttft_ms"),
    ("TTS first chunk (call to first audio)", "tts_first_audio_ms"),
]


def _turn_rows(events: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Voice-to-voice and the server's timings for each input answered with audio."""
    rows = []
    starts = [e for e in events if e["type"] == "client.input_started"]
    for start in starts:
        speech_end = start["t"] + start["speech_end_s"]
        done = next(
            (e for e in events if e["type"] == "response.done" and e["t"] > speech_end), None
        )
        if done is None or done["status"] != "completed":
            continue
        audio = next(
            (e for e in events
             if e["type"] == "response.audio" and e["turn_id"] == done["turn_id"]),
            None,
        )  # fmt: skip
        if audio is None:
            continue
        row = {"v2v": (audio["t"] - speech_end) * 1000}
        row.update({k: float(v) for k, v in done["timings"].items()})
        rows.append(row)
    return rows


def _video_lateness_ms(events: list[dict[str, Any]]) -> list[float]:
    """For each avatar frame: arrival minus when its audio plays (playback starts on arrival)."""
    first_audio: dict[int, float] = {}
    lateness = []
    for event in events:
        if event["type"] == "response.audio":
            first_audio.setdefault(event["turn_id"], event["t"])
        elif event["type"] == "response.video" and event["turn_id"] in first_audio:
            due = first_audio[event["turn_id"]] + event["pts_us"] / 1e6
            lateness.append((event["t"] - due) * 1000)
    return lateness


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=22)
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--config", help="settings YAML for the server started here")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument(
        "--video", action="store_true", help="ask for the avatar (JPEG) and measure A/V timing"
    )
    args = parser.parse_args()

    from dandelion_client.file_mode import Utterance, run_file_session

    from dandelion.eval.server import LocalServer
    from dandelion.tools.machine import describe_machine
    from dandelion.tools.say import Speaker

    workdir = Path(tempfile.mkdtemp(prefix="dandelion-bench-"))
    speaker = Speaker()
    utterances = []
    for index in range(args.turns + 1):  # the first turn warms up and is not counted
        text = QUESTIONS[index % len(QUESTIONS)]
        utterances.append(Utterance.load(speaker.say(text, workdir / f"q{index}.wav")))
    server = contextlib.ExitStack()
    url = args.url or server.enter_context(LocalServer(args.config, num_cpus=2))
    print(f"server: {url}; {args.turns} turns + 1 warm-up, streamed in real time", flush=True)
    try:
        rows: list[dict[str, float]] = []
        lateness: list[float] = []
        # Sessions of at most 11 turns, so the prompt stays the size of a real conversation.
        for start in range(0, len(utterances), 11):
            recorder = asyncio.run(
                run_file_session(
                    url,
                    utterances[start : start + 11],
                    listen_to_end=False,
                    video="jpeg" if args.video else None,
                )
            )
            rows.extend(_turn_rows(recorder.events))
            lateness.extend(_video_lateness_ms(recorder.events))
            print(f"  {len(rows)} turns measured", flush=True)
    finally:
        server.close()
    rows = rows[1:]
    lines = [
        "| stage (ms after the end of speech unless noted) | p50 | p95 |",
        "|---|---|---|",
    ]
    for label, key in COLUMNS:
        values = [row[key] for row in rows if key in row]
        if values:
            lines.append(f"| {label} | {_pct(values, 0.5):.0f} | {_pct(values, 0.95):.0f} |")
    if lateness:
        late = sum(1 for value in lateness if value > 40) / len(lateness)
        lines.append(
            f"| avatar frame arrival vs. its audio (ms; > 0: late) | {_pct(lateness, 0.5):.0f} "
            f"| {_pct(lateness, 0.95):.0f} |"
        )
        lines.append(f"| avatar frames more than 40 ms late | {late:.0%} | |")
    table = "\n".join(lines)
    print(table)
    heading = VIDEO_HEADING if args.video else PLAIN_HEADING
    section = (
        f"{heading}\n\n"
        f"Measured {datetime.date.today()} on {describe_machine()}, "
        "by `benchmarks/voice_to_voice.py`: "
        f"{len(rows)} turns (Piper-spoken questions streamed in real time, one warm-up turn "
        "dropped), default settings (end-of-turn silence 500 ms, speculative start at 200 ms)"
        f"{', avatar video on (JPEG, 25 fps)' if args.video else ''}.\n\n"
        f"{table}\n"
    )
    _write_section(Path(args.output), heading, section)
    return 0


def _notes(section: str) -> str:
    """The text under a section's (last) table."""
    lines = section.splitlines()
    table_end = max((i for i, line in enumerate(lines) if line.startswith("|")), default=-1)
    return "\n".join(lines[table_end + 1 :]).strip("\n") if table_end >= 0 else ""


def _write_section(path: Path, heading: str, section: str) -> None:
    """Put `section` under `heading` in the doc, keeping the notes written below its old table
    (the analysis of a run stays until someone rewrites it)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if heading in text:
        before, _, rest = text.partition(heading)
        old, *after = rest.split("\n## ", 1)
        if not _notes(section):  # a new note replaces the old one
            notes = _notes(old)
            section = section.rstrip("\n") + "\n" + (f"\n{notes}\n" if notes else "")
        text = before + section + ("\n## " + after[0] if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
