"""Drives a real server over the wire protocol (docs/protocol.md) as a person would, one scenario
per session: speaks each turn into the microphone in real time, listens on a loudspeaker (which
pauses, resumes and stops as the server says), speaks again when the reply has finished playing
(or over it, when the scenario says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from dandelion.errors import DandelionError
from dandelion.eval.build import BuiltTurn
from dandelion.eval.metrics import TOLERANCE_MS
from dandelion.eval.microphone import Microphone
from dandelion.eval.scenario import Scenario
from dandelion.eval.speaker import Loudspeaker
from dandelion.eval.timeline import ServerTurn, Timeline, UtteranceRecord, server_turns
from dandelion.protocol import MediaKind, decode_media_frame

_CONNECT_TIMEOUT_S = 60.0  # the first session of a fresh server waits for its models


class ConnectionLost(Exception):
    """The server closed the session before the scenario was over."""


class ServerUnreachable(DandelionError):
    """No session could be opened at the URL (nothing listens, not a Dandelion server, or no
    `session.created` in time)."""


class _Listener:
    """Everything that arrives: events stamped with client time, reply audio to the speaker."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.events: list[dict[str, Any]] = []
        self.speaker: Loudspeaker | None = None
        self.changed = asyncio.Event()
        self.closed = False
        self._turns: list[ServerTurn] = []
        self._turns_at = 0

    def on_message(self, message: str | bytes) -> None:
        now = self.clock()
        if isinstance(message, bytes):
            frame = decode_media_frame(message)
            if frame.kind != MediaKind.AUDIO or self.speaker is None:
                return
            self.speaker.play(frame.turn_id, frame.payload, now)
            samples = len(frame.payload) // 2
            event = {"type": "response.audio", "turn_id": frame.turn_id, "samples": samples}
        else:
            event = json.loads(message)
            kind = event.get("type")
            if kind == "session.created":
                self.speaker = Loudspeaker(int(event["output_audio"]["sample_rate"]))
            elif kind == "response.audio.paused" and self.speaker is not None:
                self.speaker.pause(int(event["turn_id"]), now)  # speech over it: hold it
            elif kind == "response.audio.resumed" and self.speaker is not None:
                self.speaker.resume(int(event["turn_id"]), now)
            elif kind == "response.interrupted" and self.speaker is not None:
                self.speaker.stop(int(event["turn_id"]), now)
            elif kind == "input_audio.speech_stopped" and self.speaker is not None:
                self.speaker.stop_all(now)  # a new turn: the old reply is over (protocol §9)
        self.events.append({**event, "t": round(now, 4)})
        self.changed.set()

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["type"] == kind), None)

    def turns(self) -> list[ServerTurn]:
        """The server's turns so far (read again only when something new arrived)."""
        if self._turns_at != len(self.events):
            self._turns, self._turns_at = server_turns(self.events), len(self.events)
        return self._turns


class ScenarioRun:
    """One scenario on one WebSocket session. `run()` returns its timeline and, per reply turn,
    the audio as it played (16 kHz), for the bench to transcribe."""

    def __init__(
        self, url: str, scenario: Scenario, built: list[BuiltTurn], keep_microphone: bool = False
    ) -> None:
        self.url = url
        self.scenario = scenario
        self.built = built
        self.keep_microphone = keep_microphone
        self._origin = time.monotonic()
        self.listener = _Listener(self._now)
        self.timeline = Timeline()
        self._mic: Microphone | None = None
        self._mic_done = asyncio.Event()

    def _now(self) -> float:
        return time.monotonic() - self._origin

    async def run(self) -> tuple[Timeline, dict[int, npt.NDArray[np.float32]]]:
        import websockets

        try:
            connection = await websockets.connect(
                self.url, max_size=None, open_timeout=_CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError, websockets.InvalidURI, websockets.InvalidHandshake) as exc:
            raise ServerUnreachable(f"no Dandelion server at {self.url} ({exc})") from exc
        async with connection as ws:
            reader = asyncio.create_task(self._read(ws))
            sender: asyncio.Task[None] | None = None
            try:
                await self._open(ws)
                assert self.listener.speaker is not None
                self._mic = Microphone(
                    self.listener.speaker, self.scenario.echo, keep=self.keep_microphone
                )
                self._origin = time.monotonic()  # client time 0: the first frame's capture
                sender = asyncio.create_task(self._send_audio(ws, self._mic))
                await self._converse()
                await ws.send(json.dumps({"type": "conversation.get"}))
                history = await self._wait(lambda: self.listener.first("conversation.history"), 10)
                if history is not None:
                    self.timeline.history = list(history["items"])
            except (websockets.ConnectionClosed, ConnectionLost) as exc:
                self.timeline.aborted = f"the server closed the connection ({exc})"
            finally:
                for task in (sender, reader):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
        speaker = self.listener.speaker
        self.timeline.events = self.listener.events
        self.timeline.utterances = self._mic.records if self._mic else []
        played = {}
        if speaker is not None:
            self.timeline.playback = speaker.record()
            played = {turn: speaker.played(turn) for turn in self.timeline.playback}
        return self.timeline, played

    def microphone(self) -> bytes:
        """What the microphone sent, PCM16LE at 16 kHz, when made with `keep_microphone`."""
        return self._mic.recording() if self._mic else b""

    async def _open(self, ws: Any) -> None:
        created = await self._wait(
            lambda: self.listener.first("session.created"), _CONNECT_TIMEOUT_S
        )
        if created is None:
            raise ServerUnreachable(f"{self.url}: no session.created in {_CONNECT_TIMEOUT_S:.0f} s")
        settings = self.scenario.session
        if settings is None:
            return
        update = {k: v for k, v in settings.model_dump().items() if v is not None}
        await ws.send(json.dumps({"type": "session.update", "session": update}))
        answer = await self._wait(
            lambda: self.listener.first("session.updated") or self.listener.first("error"), 10
        )
        if answer is None or answer["type"] == "error":
            self.timeline.notes.append(f"session.update refused: {answer}")

    async def _read(self, ws: Any) -> None:
        try:
            async for message in ws:
                self.listener.on_message(message)
        finally:
            self._lost()

    def _lost(self) -> None:
        """The connection is gone: wake every waiter."""
        self.listener.closed = True
        self.listener.changed.set()
        self._mic_done.set()

    async def _send_audio(self, ws: Any, mic: Microphone) -> None:
        """One frame every 20 ms on an absolute schedule, like a sound card."""
        try:
            while True:
                frame = mic.frame()
                await ws.send(frame)
                if not mic.busy:
                    self._mic_done.set()
                delay = mic.now_t - self._now()
                if delay > 0:
                    await asyncio.sleep(delay)
        except Exception:
            self._lost()
            raise

    async def _converse(self) -> None:
        assert self._mic is not None
        for index, (turn, built) in enumerate(zip(self.scenario.turns, self.built, strict=True)):
            if index > 0:
                previous = self._mic.records[-1]
                if turn.over_reply_s is not None:
                    await self._over_reply(previous, turn.over_reply_s)
                else:
                    await self._floor(previous)
                    await self._pause(turn.gap_s)
            self._mic_done.clear()
            self._mic.speak(index, built.audio, built.spans)
            await self._mic_done.wait()
            if self.listener.closed:
                raise ConnectionLost(f"while turn {index + 1} was spoken")
        await self._floor(self._mic.records[-1])

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def _over_reply(self, previous: UtteranceRecord, after_s: float) -> None:
        """Wait for the reply to `previous` to start playing, then `after_s` more. When no turn
        was taken `settle_s` after it, no reply is coming: say so, and speak now."""
        assert self.listener.speaker is not None
        speaker = self.listener.speaker
        since = previous.audio_start_ms
        settle_until = previous.audio_end_ms / 1000 + self.scenario.settle_s

        def reply_audio() -> tuple[float | None] | None:
            turns = self.listener.turns()
            for turn in turns:
                if turn.audio_end_ms >= since and turn.first_audio_t is not None:
                    return (speaker.first_audio_t(turn.turn_id),)
            quiet = all(t.status is not None for t in turns) and self._speech_pending() is None
            return (None,) if quiet and self._now() >= settle_until else None

        found = await self._wait(reply_audio, self.scenario.reply_timeout_s, poll_s=0.05)
        started = found[0] if found else None
        if started is None:
            self.timeline.notes.append(f"turn {previous.index + 1}: no reply to speak over")
            return
        await self._pause(started + after_s - self._now())

    async def _floor(self, previous: UtteranceRecord) -> None:
        """Wait until the floor is free after `previous`: its turn answered and played (not
        held by a pause: it resumes or is interrupted), or (nothing taken) `settle_s` of silence;
        and no speech the server heard since (echo, noise) still on its way to becoming a turn,
        for up to `settle_s`."""
        assert self.listener.speaker is not None
        speaker = self.listener.speaker
        end_ms = previous.sound_end_ms
        settle_until = previous.audio_end_ms / 1000 + self.scenario.settle_s

        def free() -> bool:
            turns = self.listener.turns()
            if any(t.status is None for t in turns):
                return False
            if speaker.playing(self._now()) or speaker.holding():
                return False
            heard = self._speech_pending()
            if heard is not None and self._now() < heard + self.scenario.settle_s:
                return False
            answered = any(
                t.audio_end_ms >= end_ms - TOLERANCE_MS and t.audio_start_ms <= end_ms
                for t in turns
            )
            return answered or self._now() >= settle_until

        if not await self._wait(free, self.scenario.reply_timeout_s, poll_s=0.05):
            self.timeline.notes.append(
                f"turn {previous.index + 1}: no end of reply in {self.scenario.reply_timeout_s} s"
            )

    def _speech_pending(self) -> float | None:
        """When the server last heard speech start that has not ended a turn yet (it may never:
        speech too short to take the turn over a reply is dropped)."""
        for event in reversed(self.listener.events):
            if event["type"] == "input_audio.speech_stopped":
                return None
            if event["type"] == "input_audio.speech_started":
                return float(event["t"])
        return None

    async def _wait(
        self, condition: Callable[[], Any], timeout_s: float, poll_s: float = 0.0
    ) -> Any:
        """The first truthy value of `condition`, re-checked on each message (and every
        `poll_s`, for conditions that change with time); None on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            if self.listener.closed:
                raise ConnectionLost("while waiting for the server")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.listener.changed.clear()
            wait = min(remaining, poll_s) if poll_s else remaining
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.listener.changed.wait()
