"""The runner's timing against a scripted server on loopback: when each turn is spoken, that it
waits for the reply to finish playing (a paused one too), that a pause holds the loudspeaker and
an interruption after it is timed to the pause, and that a lost connection ends the run with a
note.

The server here is a fake of the *other side* (real WebSocket, real protocol messages, scripted
turn-taking: a turn ends after 300 ms of silence and gets a one-second reply at once), so the
runner's own decisions can be checked to the frame. The real server is exercised by the smoke
suite in tests/integration/test_eval_smoke.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np

from dandelion.eval.build import BuiltTurn
from dandelion.eval.metrics import score_scenario
from dandelion.eval.runner import ScenarioRun
from dandelion.eval.scenario import Scenario
from dandelion.protocol import MediaFrame, MediaKind, encode_media_frame

RATE = 16_000
OUT = 22_050
REPLY_S = 1.0


def _speech(seconds: float) -> BuiltTurn:
    """A tone with 0.2 s of silence either side (speech enough for the scripted server)."""
    pad = np.zeros(int(0.2 * RATE), dtype=np.float32)
    tone = (0.3 * np.sin(np.arange(int(seconds * RATE)) * 0.2)).astype(np.float32)
    audio = np.concatenate((pad, tone, pad))
    return BuiltTurn(audio, ((len(pad), len(pad) + len(tone)),), Path("tone.wav"))


class ScriptedServer:
    """Ends a turn after 300 ms of silence following sound; answers with REPLY_S of audio."""

    def __init__(self, close_after_turns: int | None = None) -> None:
        self.close_after_turns = close_after_turns

    async def __call__(self, ws: Any) -> None:
        created = {"type": "session.created", "output_audio": {"sample_rate": OUT}}
        await ws.send(json.dumps(created))
        samples = voiced_end = 0
        speech_start: int | None = None
        turn = 0
        async for message in ws:
            if isinstance(message, str):
                if json.loads(message)["type"] == "conversation.get":
                    await ws.send(json.dumps({"type": "conversation.history", "items": []}))
                continue
            pcm = np.frombuffer(message, "<i2")
            samples += len(pcm)
            if np.abs(pcm).max() > 1000:
                speech_start = samples - len(pcm) if speech_start is None else speech_start
                voiced_end = samples
            elif speech_start is not None and samples - voiced_end >= 0.3 * RATE:
                turn += 1
                await self._answer(ws, turn, speech_start // 16, voiced_end // 16)
                speech_start = None
                if turn == self.close_after_turns:
                    await ws.close()
                    return

    async def _answer(self, ws: Any, turn: int, start_ms: int, end_ms: int) -> None:
        stopped = {
            "type": "input_audio.speech_stopped",
            "audio_start_ms": start_ms,
            "audio_end_ms": end_ms,
            "turn_id": turn,
        }
        await ws.send(json.dumps(stopped))
        await ws.send(json.dumps({"type": "transcript.final", "turn_id": turn, "text": "hm"}))
        await ws.send(json.dumps({"type": "response.started", "turn_id": turn}))
        chunk = np.zeros(int(0.2 * OUT), dtype="<i2").tobytes()
        for seq in range(int(REPLY_S / 0.2)):
            frame = MediaFrame(MediaKind.AUDIO, turn, seq, seq * 200_000, chunk)
            await ws.send(encode_media_frame(frame))
        done = {"type": "response.done", "turn_id": turn, "status": "completed", "text": "ok"}
        await ws.send(json.dumps(done))


class PausingServer(ScriptedServer):
    """Also pauses its reply when sound comes over it (`response.audio.paused`, by its own
    estimate that the reply still plays); sound that lasts `interrupt_s` interrupts it, sound
    followed by `resume_after_s` of silence resumes it (a backchannel: no turn)."""

    def __init__(self, interrupt_s: float = 0.2, resume_after_s: float = 1.0) -> None:
        super().__init__()
        self.interrupt = int(interrupt_s * RATE)
        self.resume_after = int(resume_after_s * RATE)

    async def __call__(self, ws: Any) -> None:
        created = {"type": "session.created", "output_audio": {"sample_rate": OUT}}
        await ws.send(json.dumps(created))
        samples = voiced_end = 0
        speech_start: int | None = None
        turn = 0
        reply: int | None = None  # the turn whose reply may still play
        playing_until = 0  # stream sample where it ends, as the server estimates
        paused_at: int | None = None
        async for message in ws:
            if isinstance(message, str):
                if json.loads(message)["type"] == "conversation.get":
                    await ws.send(json.dumps({"type": "conversation.history", "items": []}))
                continue
            pcm = np.frombuffer(message, "<i2")
            samples += len(pcm)
            silent_for = samples - voiced_end
            if np.abs(pcm).max() > 1000:
                speech_start = samples - len(pcm) if speech_start is None else speech_start
                voiced_end = samples
                if reply is not None and paused_at is None and samples < playing_until:
                    paused_at = samples
                    played_ms = (samples - playing_until) // 16 + int(REPLY_S * 1000)
                    event = {"type": "response.audio.paused", "turn_id": reply}
                    await ws.send(json.dumps({**event, "played_ms": played_ms}))
                elif paused_at is not None and samples - speech_start >= self.interrupt:
                    # Speech, not a backchannel: the reply is over.
                    event = {"type": "response.interrupted", "turn_id": reply, "played_ms": 0}
                    await ws.send(json.dumps({**event, "heard_text": ""}))
                    reply = paused_at = None
            elif paused_at is not None and silent_for >= self.resume_after:
                await ws.send(json.dumps({"type": "response.audio.resumed", "turn_id": reply}))
                playing_until += samples - paused_at
                speech_start = paused_at = None
            elif paused_at is None and speech_start is not None and silent_for >= 0.3 * RATE:
                turn += 1
                await self._answer(ws, turn, speech_start // 16, voiced_end // 16)
                reply, playing_until = turn, samples + int(REPLY_S * RATE)
                speech_start = None


async def _run(server: ScriptedServer, scenario: Scenario, built: list[BuiltTurn]) -> Any:
    from websockets.asyncio.server import serve

    async with serve(server, "127.0.0.1", 0) as listening:
        port = listening.sockets[0].getsockname()[1]
        return await ScenarioRun(f"ws://127.0.0.1:{port}", scenario, built).run()


def _scenario(
    *more: dict[str, Any], first: dict[str, Any] | None = None, **second: Any
) -> Scenario:
    turns = [{"say": "one", **(first or {})}, {"say": "two", **second}, *more]
    return Scenario.model_validate({"name": "s", "turns": turns, "settle_s": 1.0})


def test_the_next_turn_waits_for_the_reply_to_finish_playing() -> None:
    timeline, played = asyncio.run(
        _run(ScriptedServer(), _scenario(gap_s=0.4), [_speech(0.5), _speech(0.5)])
    )
    _, second = timeline.utterances
    playback = timeline.playback[1]
    assert abs(playback.end_t - playback.start_t - REPLY_S) < 0.01
    # Spoken on the microphone's 20 ms grid, after the reply ended plus the gap.
    start_t = second.audio_start_ms / 1000
    assert playback.end_t + 0.4 <= start_t < playback.end_t + 0.4 + 0.1
    assert [len(played[t]) for t in (1, 2)] == [RATE, RATE]
    assert timeline.notes == []


def test_over_reply_speaks_that_long_after_the_replys_first_audio() -> None:
    timeline, _ = asyncio.run(
        _run(ScriptedServer(), _scenario(over_reply_s=0.5), [_speech(0.5), _speech(0.3)])
    )
    second = timeline.utterances[1]
    target = timeline.playback[1].start_t + 0.5
    assert target <= second.audio_start_ms / 1000 < target + 0.06


def test_a_closed_connection_ends_the_run_marked_as_cut_short() -> None:
    timeline, _ = asyncio.run(
        _run(ScriptedServer(close_after_turns=1), _scenario(), [_speech(0.5), _speech(0.5)])
    )
    assert len(timeline.utterances) == 1
    assert timeline.aborted is not None and "closed the connection" in timeline.aborted


def test_a_paused_reply_resumes_whole_and_the_next_turn_waits_for_its_end() -> None:
    """A short sound over the reply pauses it; the server resumes it only after the settle
    time (1 s after that utterance) has passed, so the third turn must wait for the held
    reply, not for the settle."""
    scenario = _scenario({"say": "three", "gap_s": 0.1}, over_reply_s=0.3)
    built = [_speech(0.5), _speech(0.15), _speech(0.3)]
    timeline, played = asyncio.run(_run(PausingServer(resume_after_s=1.5), scenario, built))
    kinds = [e["type"] for e in timeline.events if e.get("turn_id") == 1]
    assert "response.audio.resumed" in kinds and "response.interrupted" not in kinds
    playback = timeline.playback[1]
    assert not playback.cut and playback.pauses == 1
    assert 1.5 < playback.paused_s < 1.9  # the sound's 0.15 s, then 1.5 s of silence
    # All of the reply played, later by the pause.
    assert abs(playback.played_s - REPLY_S) < 0.01 and len(played[1]) == RATE
    assert abs(playback.end_t - playback.start_t - REPLY_S - playback.paused_s) < 0.01
    third = timeline.utterances[2]
    assert playback.end_t + 0.1 <= third.audio_start_ms / 1000 < playback.end_t + 0.1 + 0.1
    assert timeline.notes == []


def test_an_interruption_after_a_pause_is_timed_to_the_pause() -> None:
    scenario = _scenario(first={"expect": {"interrupted": True}}, over_reply_s=0.3)
    built = [_speech(0.5), _speech(0.8)]
    timeline, played = asyncio.run(_run(PausingServer(), scenario, built))
    events = {e["type"]: e for e in timeline.events if e.get("turn_id") == 1}
    paused_t, interrupted_t = (
        events[k]["t"] for k in ("response.audio.paused", "response.interrupted")
    )
    assert interrupted_t - paused_t > 0.15  # the server took 0.2 s of speech to decide
    playback = timeline.playback[1]
    assert playback.cut and playback.pauses == 1
    # Silent from the pause on, not from the interruption (event times are rounded to 0.1 ms).
    assert abs(playback.end_t - paused_t) < 1e-3
    assert abs(len(played[1]) / RATE - playback.played_s) < 0.01
    score = score_scenario(scenario, timeline).turns[0]
    onset = timeline.utterances[1].spans[0].start_t
    assert score.interrupted and score.false_barge_in is None
    assert score.barge_in_s is not None and abs(score.barge_in_s - (paused_t - onset)) < 1e-3
    assert 0 <= score.barge_in_s < 0.1  # the first loud frame's arrival, not + 0.2 s
