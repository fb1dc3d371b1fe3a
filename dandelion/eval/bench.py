"""One bench run: the suite's audio built, every scenario spoken to the server, each reply
transcribed again and each scenario scored, with a progress line as each one finishes."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from dandelion.eval.build import BuiltTurn, build_turn
from dandelion.eval.metrics import ScenarioScore, score_scenario
from dandelion.eval.runner import ScenarioRun, ServerUnreachable
from dandelion.eval.scenario import Scenario, Suite
from dandelion.eval.timeline import Timeline
from dandelion.eval.voices import VoiceBank

WARM_UP_SCENARIO = Scenario.model_validate(
    {"name": "warm-up", "turns": [{"say": "Hello, can you hear me?"}]}
)
"""Spoken once before the suite and not scored: the first turn of a fresh server pays for its
models' warm-up."""


def build_suite(
    suite: Suite, folder: Path, scenarios: list[Scenario], audio_dir: Path, warm_up: bool = True
) -> dict[str, list[BuiltTurn]]:
    """Every turn's audio, by scenario name (and the warm-up's, under "warm-up")."""
    voices = VoiceBank()
    live = sys.stdout.isatty()
    started = time.monotonic()
    count = f"{len(scenarios)} scenario{'s' if len(scenarios) > 1 else ''}"
    print(f"building the audio of {count} ...", flush=True)
    built = {}
    if warm_up:
        built["warm-up"] = _build(WARM_UP_SCENARIO, audio_dir, audio_dir, "piper", voices)
    for number, scenario in enumerate(scenarios, 1):
        if live:
            print(f"\r  {number}/{len(scenarios)} {scenario.name:50}", end="", flush=True)
        built[scenario.name] = _build(scenario, folder, audio_dir, suite.voice, voices)
    if live:
        print("\r" + " " * 60 + "\r", end="")
    print(f"  built in {time.monotonic() - started:.0f} s", flush=True)
    return built


def _build(
    scenario: Scenario, folder: Path, audio_dir: Path, voice: str, voices: VoiceBank
) -> list[BuiltTurn]:
    return [
        build_turn(
            turn,
            folder=folder,
            default_voice=voice,
            workdir=audio_dir,
            voices=voices,
            name=f"{scenario.name}-{index + 1}",
        )
        for index, turn in enumerate(scenario.turns)
    ]


class Judge:
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


@dataclass
class Bench:
    """Runs scenarios against `url`, `sessions` at a time; `scores` fills as they finish (an
    interrupted run still has the finished ones)."""

    url: str
    built: dict[str, list[BuiltTurn]]
    judge: Judge
    timelines: IO[str]
    """Where each scenario's timeline goes, one JSON line each, as it finishes."""
    sessions: int = 1
    audio_dir: Path | None = None
    """Where each scenario's microphone stream and replies as played are saved (None: not)."""
    scores: list[ScenarioScore] = field(default_factory=list)
    _unreachable: int = 0

    async def run(self, scenarios: list[Scenario], warm_up: bool = True) -> list[ScenarioScore]:
        """Raises ServerUnreachable when the warm-up (or, without one, every scenario) finds no
        server; a server lost later fails the scenarios left, and the run goes on."""
        if warm_up:
            print("warming up the server (one unscored turn) ...", flush=True)
            await ScenarioRun(self.url, WARM_UP_SCENARIO, self.built["warm-up"]).run()
        gate = asyncio.Semaphore(self.sessions)

        async def one(scenario: Scenario) -> ScenarioScore:
            async with gate:
                return await self._one(scenario, len(scenarios))

        scores = list(await asyncio.gather(*(one(s) for s in scenarios)))
        if self._unreachable == len(scenarios):
            raise ServerUnreachable(f"no Dandelion server at {self.url}")
        return scores

    async def _one(self, scenario: Scenario, total: int) -> ScenarioScore:
        began = time.monotonic()
        keep = self.audio_dir is not None
        run = ScenarioRun(self.url, scenario, self.built[scenario.name], keep_microphone=keep)
        try:
            timeline, played = await run.run()
        except ServerUnreachable as exc:
            self._unreachable += 1
            timeline, played = Timeline(aborted=str(exc)), {}
        for turn, audio in played.items():
            timeline.heard[turn] = await asyncio.to_thread(self.judge.transcribe, audio)
        if self.audio_dir is not None:
            _keep_audio(self.audio_dir, scenario.name, run.microphone(), played)
        score = score_scenario(scenario, timeline)
        self.scores.append(score)
        self.timelines.write(json.dumps({"scenario": scenario.name, **timeline.to_dict()}) + "\n")
        self.timelines.flush()
        print(progress(len(self.scores), total, score, time.monotonic() - began), flush=True)
        return score


def _keep_audio(
    folder: Path, name: str, microphone: bytes, played: dict[int, npt.NDArray[np.float32]]
) -> None:
    """NAME-microphone.wav (all that was sent, echo included) and NAME-reply-TURN.wav (each
    reply as it played), 16 kHz."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    sent = np.frombuffer(microphone, dtype="<i2")
    sf.write(str(folder / f"{name}-microphone.wav"), sent, 16_000, subtype="PCM_16")
    for turn, audio in played.items():
        sf.write(str(folder / f"{name}-reply-{turn}.wav"), audio, 16_000, subtype="PCM_16")


def progress(number: int, total: int, score: ScenarioScore, seconds: float) -> str:
    """`[ 6/58] name (14 s): turns 1 v2v 0.64 s | pass` (or FAIL and what failed)."""
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
