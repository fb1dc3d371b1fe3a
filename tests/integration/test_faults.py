"""Fault injection: a model replica killed in the middle of a turn, on the live Serve app.

For each model deployment in turn (ASR, LLM, TTS, and the Avatar when the app has one), one
session answers a question, then its replica is killed with `ray.kill` while the next turn uses
it. That turn must end (a failed turn with a retryable error, or one that recovered and
completed); once Serve has replaced the replica, the same session answers a new question and its
history still holds the earlier exchanges. Killing the Gateway closes its sessions' sockets; a new
session is answered once Serve restores it (resuming the old conversation is not the protocol's:
a closed socket ends a session, docs/protocol.md §1).

Every test waits for Serve to bring the replica back before it ends, so the app is whole again for
the tests after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import ray
from dandelion_client.audio import load_audio, to_pcm16
from dandelion_client.file_mode import Recorder, _read
from ray import serve

from dandelion.config import AppSettings
from dandelion.protocol.errors import RETRYABLE_CODES
from dandelion.serve.app import APP_NAME
from tests.integration.conftest import events_of, read_events, run_client
from tests.integration.test_fuzz import leaks_internals

pytestmark = pytest.mark.integration

SERVE_NAMESPACE = "serve"  # where Serve names its actors: SERVE_REPLICA::<app>#<deployment>#<id>
RESTORE_TIMEOUT_S = 180.0  # Serve notices a dead replica at its next health check (10 s)
TURN_TIMEOUT_S = 120.0
# The microphone streams faster than real time (the server's clock is the audio), inside the
# server's limit on audio ahead of real time (SecuritySettings.max_audio_speed, 2x).
MIC_SPEED = 1.5
FRAME_BYTES = 640  # 20 ms of 16 kHz PCM16
_FINAL = {"completed", "failed", "empty", "ignored"}
_STAGE_ERROR = {"ASR": "asr_failed", "LLM": "llm_failed", "TTS": "tts_failed"}


# ---------------------------------------------------------------- Serve replicas


def replicas(deployment: str) -> list[str]:
    prefix = f"SERVE_REPLICA::{APP_NAME}#{deployment}#"
    named = ray.util.list_named_actors(all_namespaces=True)
    return [a["name"] for a in named if str(a["name"]).startswith(prefix)]


def kill_replica(deployment: str) -> str:
    """Kill the deployment's one replica, as a crash would; its actor name."""
    (name,) = replicas(deployment)
    ray.kill(ray.get_actor(name, namespace=SERVE_NAMESPACE), no_restart=True)
    return name


def restored(deployment: str, killed: str) -> bool:
    """Serve has replaced the killed replica and reports the deployment healthy."""
    status = serve.status().applications[APP_NAME].deployments[deployment]
    names = replicas(deployment)
    return (
        status.status == "HEALTHY"
        and {str(k): v for k, v in status.replica_states.items()} == {"RUNNING": 1}
        and len(names) == 1
        and killed not in names
    )


async def wait_restored(deployment: str, killed: str) -> None:
    deadline = time.monotonic() + RESTORE_TIMEOUT_S
    while not restored(deployment, killed):
        assert time.monotonic() < deadline, f"Serve did not restore {deployment}"
        await asyncio.sleep(0.5)


# ---------------------------------------------------------------- a session with a microphone


class Microphone:
    """Streams 20 ms frames without a break, as a live client does: speech when there is some
    to say, silence otherwise."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._speech = bytearray()
        self._said = asyncio.Event()

    async def run(self) -> None:
        period = FRAME_BYTES / 32_000 / MIC_SPEED
        due = time.monotonic()
        while True:
            frame = bytes(self._speech[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\0")
            del self._speech[:FRAME_BYTES]
            if not self._speech:
                self._said.set()
            await self._ws.send(frame)
            due += period
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def say(self, pcm: bytes) -> None:
        """Returns once the speech has been sent; silence follows."""
        self._said.clear()
        self._speech += pcm
        await self._said.wait()


class Conversation:
    """One WebSocket session: its recorder (every event, playback as a client estimates it)
    and its microphone."""

    def __init__(self, ws: Any, recorder: Recorder) -> None:
        self.ws = ws
        self.recorder = recorder
        self.mic = Microphone(ws)

    def since(self, mark: int, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.recorder.events[mark:] if e["type"] == kind]

    async def wait(self, condition: Callable[[], object], what: str, timeout_s: float) -> None:
        # Polled: some conditions (a reply played to its end) come true with time, not events.
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"{what}: nothing after {timeout_s:.0f} s"
            await asyncio.sleep(0.05)

    async def turn_done(self, mark: int) -> dict[str, Any]:
        """The response.done that ends the turn begun at event `mark`."""

        def done() -> list[dict[str, Any]]:
            return [e for e in self.since(mark, "response.done") if e["status"] in _FINAL]

        await self.wait(done, "the turn never ended", TURN_TIMEOUT_S)
        return done()[0]

    async def listened(self) -> None:
        """The reply has played to its end at the client: speaking now interrupts nothing."""
        await self.wait(lambda: not self.recorder.playing(), "reply still playing", 60)

    async def ask(self, pcm: bytes) -> dict[str, Any]:
        """Speak a question, wait for its reply and listen to it; the reply's response.done."""
        await self.listened()
        mark = len(self.recorder.events)
        await self.mic.say(pcm)
        done = await self.turn_done(mark)
        await self.listened()
        return done

    async def history(self) -> list[dict[str, str]]:
        mark = len(self.recorder.events)
        await self.ws.send(json.dumps({"type": "conversation.get"}))
        await self.wait(lambda: self.since(mark, "conversation.history"), "no history", 30)
        items: list[dict[str, str]] = self.since(mark, "conversation.history")[0]["items"]
        return items


@contextlib.asynccontextmanager
async def conversation(url: str) -> AsyncIterator[Conversation]:
    import websockets

    recorder = Recorder()
    async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
        talk = Conversation(ws, recorder)
        tasks = [asyncio.create_task(_read(ws, recorder)), asyncio.create_task(talk.mic.run())]
        try:
            await talk.wait(lambda: recorder.first("session.created"), "no session", 60)
            yield talk
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _pcm(path: Path) -> bytes:
    return to_pcm16(load_audio(path))


def _answers_paris(done: dict[str, Any]) -> None:
    assert done["status"] == "completed", done
    assert "paris" in done["text"].lower(), done


# ---------------------------------------------------------------- the tests

# A question whose answer takes several sentences (five, from the default LLM): the kill lands
# while the LLM writes, the TTS speaks or the avatar renders. Not about Paris, so the answer to
# the question after it is the new question's.
LONG_QUESTION = "Describe how bread is made, step by step."

# (deployment, question, what the client sees when the kill lands: the reply has started)
MODEL_CASES = [
    ("ASR", "capital", None),  # killed as the user stops speaking, before the transcript
    ("LLM", "long", "response.text.delta"),
    ("TTS", "long", "response.audio"),
    ("Avatar", "long", "response.video"),
]


@pytest.fixture(scope="module")
def questions(
    speech: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, bytes]:
    from dandelion.tools.say import Speaker

    long = Speaker().say(LONG_QUESTION, tmp_path_factory.mktemp("faults") / "long.wav")
    return {"capital": _pcm(speech["capital"]), "long": _pcm(long)}


async def _kill_mid_turn(
    url: str, deployment: str, question: str, trigger: str | None, questions: dict[str, bytes]
) -> dict[str, Any]:
    """What the session saw: the turn the kill cut, and the history after the next answer."""
    started = time.monotonic()
    async with conversation(url) as talk:
        if deployment == "Avatar":  # the avatar is used for replies only when asked for video
            await talk.ws.send(json.dumps({"type": "session.update", "session": {"video": "jpeg"}}))
            await talk.wait(lambda: talk.recorder.first("session.updated"), "no video", 30)
        first = await talk.ask(questions["capital"])
        _answers_paris(first)
        before = await talk.history()

        await talk.listened()
        mark = len(talk.recorder.events)
        await talk.mic.say(questions[question])
        if trigger is not None:
            await talk.wait(lambda: talk.since(mark, trigger), f"no {trigger}", TURN_TIMEOUT_S)
        killed = kill_replica(deployment)
        killed_at = time.monotonic()
        try:
            faulted = await talk.turn_done(mark)
            ended_s = time.monotonic() - killed_at
        finally:
            await wait_restored(deployment, killed)  # whatever happened: leave the app whole
        restored_s = time.monotonic() - killed_at
        errors = talk.since(mark, "error")
        transcripts = talk.since(mark, "transcript.final")
        # Straight on to a new question: a failed turn's words stay in the history but not in
        # the next prompt (§10), so the answer is the new question's alone.
        mark = len(talk.recorder.events)
        again = await talk.ask(questions["capital"])
        video_again = len(talk.since(mark, "response.video"))
        after = await talk.history()
    return {
        "before": before,
        "faulted": faulted,
        "errors": errors,
        "transcripts": transcripts,
        "again": again,
        "video_again": video_again,
        "after": after,
        "timings": f"turn ended {ended_s:.1f} s after the kill, replica back after "
        f"{restored_s:.1f} s, case {time.monotonic() - started:.0f} s",
    }


@pytest.mark.parametrize(("deployment", "question", "trigger"), MODEL_CASES)
def test_a_replica_killed_mid_turn_ends_the_turn_and_the_session_goes_on(
    server_url: str,
    questions: dict[str, bytes],
    deployment: str,
    question: str,
    trigger: str | None,
) -> None:
    if deployment == "Avatar" and not AppSettings().avatar.enabled:
        pytest.skip("the app runs without an avatar")
    seen = asyncio.run(_kill_mid_turn(server_url, deployment, question, trigger, questions))
    faulted, errors = seen["faulted"], seen["errors"]
    codes = [e["code"] for e in errors]
    print(f"\n{deployment} killed: turn {faulted['status']} {codes}; {seen['timings']}")
    # The turn ended: failed with a retryable error naming the stage, or recovered (a retried
    # call, or the avatar's loss absorbed: the voice goes on without a face).
    assert faulted["status"] in ("completed", "failed", "empty"), faulted
    for error in errors:
        assert error["turn_id"] == faulted["turn_id"], error
        assert error["retryable"] is True and error["code"] in RETRYABLE_CODES, error
        assert not leaks_internals(error["message"]), error
    if faulted["status"] == "failed":
        assert [e["code"] for e in errors] == [_STAGE_ERROR[deployment]], errors
    # The same session answers again, the earlier exchange intact, and a new one after it.
    _answers_paris(seen["again"])
    if faulted["status"] == "failed" and question == "long":  # answered alone, not with it
        assert "bread" not in seen["again"]["text"].lower(), seen["again"]
    after = seen["after"]
    assert after[: len(seen["before"])] == seen["before"]
    assert after[-1] == {"role": "assistant", "content": seen["again"]["text"]}
    users = " ".join(item["content"] for item in after if item["role"] == "user")
    for transcript in seen["transcripts"]:  # a failed turn's words stay in the history (§10)
        assert transcript["text"] in users
    if deployment == "Avatar":  # the face is back for the next reply
        assert seen["video_again"] > 0


async def _kill_gateway(url: str) -> int | None:
    """The close code the client's socket ends with when its gateway replica dies."""
    async with conversation(url) as talk:
        killed = kill_replica("Gateway")
        try:
            await talk.ws.wait_closed()
            code: int | None = talk.ws.close_code
        finally:
            await wait_restored("Gateway", killed)
    return code


def test_a_killed_gateway_closes_its_sessions_and_a_new_session_is_answered(
    server_url: str, speech: dict[str, Path], tmp_path: Path
) -> None:
    code = asyncio.run(asyncio.wait_for(_kill_gateway(server_url), 300))
    # Any code will do (§1: a closed socket ends the session); Serve's proxy sends no close
    # frame when the replica behind it dies, so clients see 1006.
    print(f"\ngateway killed: the client's socket closed with {code}")
    http = server_url.replace("ws://", "http://", 1).rsplit("/v1/", 1)[0]
    with urllib.request.urlopen(f"{http}/healthz", timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"
    events_path = tmp_path / "events.jsonl"
    run_client(server_url, "--input", speech["capital"], "--events", events_path)
    done = events_of(read_events(events_path), "response.done")
    assert done, "no reply"
    _answers_paris(done[-1])
