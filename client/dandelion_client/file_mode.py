"""File mode: stream audio files in real time as if spoken, record every server event.

Each input is streamed at real-time pace in 20 ms frames, followed by silence (as a live mic
would send) until its reply is done. With an interrupt file, that file starts playing a set
time after the first reply audio arrives: the person talks over the assistant.

With `video` ("jpeg" or "h264"), the client asks for the avatar's video and keeps every frame of
each reply as played: frames of an interrupted turn stop where its audio was cut (see `mp4.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dandelion.playback import PlaybackClock
from dandelion.protocol import IDLE_TURN_ID, INPUT_SAMPLE_RATE, MediaKind, decode_media_frame
from dandelion_client.audio import Audio, load_audio, speech_end_seconds, to_pcm16, write_wav

FRAME_MS = 20
API_KEY_ENV = "DANDELION_API_KEY"
"""The environment variable the client reads its API key from (when --api-key is not given)."""
_FRAME = INPUT_SAMPLE_RATE * FRAME_MS // 1000
_FINAL_STATUSES = {"completed", "failed", "empty", "ignored"}


@dataclass
class Utterance:
    path: Path
    audio: Audio
    speech_end_s: float

    @classmethod
    def load(cls, path: str | Path) -> Utterance:
        audio = load_audio(path)
        return cls(Path(path), audio, speech_end_seconds(audio))


@dataclass
class Recorder:
    """Every server event with the client's receive time, plus the reply media as played.

    Playback is estimated as a player plays: each turn's audio from its arrival, back to back,
    held while `response.audio.paused` (until `response.audio.resumed`), cut where it stopped on
    `response.interrupted` (at the pause, after one) or when a newer turn's audio comes while
    it is paused."""

    monotonic: Callable[[], float] = time.monotonic
    """The clock that playback is estimated with (a fake one in tests)."""
    started: float = field(init=False)
    events: list[dict[str, Any]] = field(default_factory=list)
    output_rate: int = 0
    audio: dict[int, bytearray] = field(default_factory=dict)
    clocks: dict[int, PlaybackClock] = field(default_factory=dict)
    cut_at: dict[int, int] = field(default_factory=dict)  # turn -> bytes kept after an interrupt
    video: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    """turn -> (pts_us, payload) of each video frame kept, in arrival order."""
    video_codec: str = "off"
    video_fps: float = 25.0
    video_size: tuple[int, int] = (512, 512)  # width, height
    last_video_at: float | None = None
    idle_frames: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.started = self.monotonic()

    def now(self) -> float:
        return self.monotonic() - self.started

    def note(self, event: dict[str, Any]) -> None:
        self.events.append({"t": round(self.now(), 4), **event})
        self.changed.set()

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str):
            event = json.loads(message)
            if event["type"] == "session.created":
                self.output_rate = int(event["output_audio"]["sample_rate"])
                video = event.get("output_video")
                if isinstance(video, dict):
                    self.video_codec = str(video.get("codec", self.video_codec))
                    self.video_fps = float(video.get("fps", self.video_fps))
                    self.video_size = (
                        int(video.get("width", self.video_size[0])),
                        int(video.get("height", self.video_size[1])),
                    )
            if event["type"] == "session.updated" and "video" in event:
                self.video_codec = str(event["video"])
            if event["type"] == "response.interrupted":
                self._stop_playback(int(event["turn_id"]))
            elif event["type"] == "response.audio.paused":
                self._clock(int(event["turn_id"])).pause(self.monotonic())
            elif event["type"] == "response.audio.resumed":
                self._clock(int(event["turn_id"])).resume(self.monotonic())
            self.note(event)
            return
        frame = decode_media_frame(message)
        if frame.kind == MediaKind.AUDIO:
            kind = "response.audio"
            if frame.turn_id in self.cut_at:
                return  # in flight when playback stopped: dropped, as a player would
            for turn, clock in list(self.clocks.items()):
                if turn != frame.turn_id and clock.paused and turn not in self.cut_at:
                    self._stop_playback(turn)  # a new reply's audio: the paused one is over
            self.audio.setdefault(frame.turn_id, bytearray()).extend(frame.payload)
            # While the turn is paused, its clock queues this behind what it holds.
            self._clock(frame.turn_id).sent(len(frame.payload) // 2, self.monotonic())
        elif frame.kind == MediaKind.VIDEO and frame.turn_id == IDLE_TURN_ID:
            kind = "idle.video"  # the face between replies: logged, not part of a reply's MP4
            self.idle_frames += 1
        elif frame.kind == MediaKind.VIDEO:
            kind = "response.video"
            if frame.turn_id in self.cut_at:
                return  # the turn's playback has stopped: so has its picture
            self.video.setdefault(frame.turn_id, []).append((frame.pts_us, frame.payload))
            self.last_video_at = self.monotonic()
        else:
            return  # a kind this client does not know: ignored, as the protocol asks
        self.note(
            {
                "type": kind,
                "turn_id": frame.turn_id,
                "seq": frame.seq,
                "pts_us": frame.pts_us,
                "bytes": len(frame.payload),
            }
        )

    def _clock(self, turn_id: int) -> PlaybackClock:
        return self.clocks.setdefault(turn_id, PlaybackClock(self.output_rate))

    def _stop_playback(self, turn_id: int) -> None:
        clock = self.clocks.get(turn_id)
        played = clock.played_samples(self.monotonic()) if clock else 0
        self.cut_at[turn_id] = played * 2
        if turn_id in self.audio:
            del self.audio[turn_id][played * 2 :]
        if turn_id in self.video:
            # Frames shown after the cut were never seen: keep those before it.
            rate = self.output_rate or 1
            self.video[turn_id] = [
                (pts, data) for pts, data in self.video[turn_id] if pts * rate < played * 1_000_000
            ]

    def first(self, kind: str, **match: Any) -> dict[str, Any] | None:
        for event in self.events:
            if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event
        return None

    def playing(self) -> bool:
        """A reply still sounds, or is paused (it will resume, or be interrupted)."""
        now = self.monotonic()
        return any(
            clock.playing(now) or (clock.paused and turn not in self.cut_at)
            for turn, clock in self.clocks.items()
        )

    def played_audio(self) -> bytes:
        return b"".join(bytes(self.audio[turn]) for turn in sorted(self.audio))

    def video_complete(self) -> bool:
        """Each finished, uncut reply's frames reach (within two frames) the end of its audio."""
        frame_us = 1_000_000 / self.video_fps
        for event in self.events:
            if event["type"] != "response.done" or event["status"] != "completed":
                continue
            turn = int(event["turn_id"])
            if turn in self.cut_at or not self.audio.get(turn):
                continue
            audio_us = len(self.audio[turn]) // 2 * 1_000_000 / (self.output_rate or 1)
            last = max((pts for pts, _ in self.video.get(turn, [])), default=None)
            if last is None or last + 2 * frame_us < audio_us:
                return False
        return True


def api_key_headers(api_key: str | None) -> dict[str, str]:
    """The headers that authenticate a session on a server with API keys (docs/security.md)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


_BUSY_RETRIES = 5


async def _connect(url: str, headers: dict[str, str], recorder: Recorder) -> Any:
    """The open socket, its first message recorded. A full server (`server_busy`, then close
    1013) is asked again after its `retry_after_s`, up to `_BUSY_RETRIES` times, as a client
    should (docs/protocol.md §11); each refusal is noted as `client.server_busy`."""
    import websockets

    for attempt in range(_BUSY_RETRIES + 1):
        ws = await websockets.connect(
            url, max_size=None, open_timeout=30, additional_headers=headers
        )
        try:
            first = await asyncio.wait_for(ws.recv(), 30)
        except BaseException:
            await ws.close()
            raise
        event = json.loads(first) if isinstance(first, str) else {}
        if event.get("code") == "server_busy" and attempt < _BUSY_RETRIES:
            await ws.close()
            wait_s = float(event.get("retry_after_s") or 1.0)
            recorder.note({"type": "client.server_busy", "retry_after_s": wait_s})
            await asyncio.sleep(wait_s)
            continue
        recorder.on_message(first)
        return ws
    raise AssertionError("unreachable")


def with_resume_token(url: str, token: str) -> str:
    """The session URL that resumes the conversation of `token` (query `resume_token`)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "resume_token"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("resume_token", token)])))


async def _stream(ws: Any, audio: Audio | None, seconds: float, recorder: Recorder) -> None:
    """Send `audio` (or silence for `seconds`) in real-time paced frames."""
    if audio is None:
        audio = np.zeros(int(seconds * INPUT_SAMPLE_RATE), dtype=np.float32)
    pcm = to_pcm16(audio)
    step = _FRAME * 2
    start = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), step)):
        await ws.send(pcm[offset : offset + step])
        delay = start + (index + 1) * FRAME_MS / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def _silence_until(ws: Any, recorder: Recorder, done: Any, timeout_s: float) -> bool:
    """Stream silence until `done()` holds; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        await _stream(ws, None, 0.1, recorder)
    return True


async def run_file_session(
    url: str,
    inputs: list[Utterance],
    *,
    interrupt: Utterance | None = None,
    interrupt_after_s: float = 0.5,
    instructions: str | None = None,
    reply_timeout_s: float = 60.0,
    listen_to_end: bool = True,
    video: str | None = None,
    api_key: str | None = None,
    resume_token: str | None = None,
) -> Recorder:
    """Speak each input in turn and wait for its reply.

    With `listen_to_end` False, the person stops each reply's playback (`response.cancel`) as
    soon as it has been fully received, instead of listening to it all: for benchmarks.
    With `video` ("jpeg" or "h264"), the session asks for the avatar's video, and the run ends
    once the last replies' frames are in (they may come after the audio) or stop coming.
    `api_key`: sent as `Authorization: Bearer` (a server with API keys refuses the socket,
    HTTP 401, without it). `resume_token`: go on with the conversation a previous session's
    `session.created` named (its `resumed` says whether the server still had it).
    """
    recorder = Recorder()
    headers = api_key_headers(api_key)
    if resume_token:
        url = with_resume_token(url, resume_token)
    async with await _connect(url, headers, recorder) as ws:
        reader = asyncio.create_task(_read(ws, recorder))
        try:
            await _wait_for(recorder, lambda: recorder.first("session.created"), 30)
            update: dict[str, Any] = {}
            if instructions is not None:
                update["instructions"] = instructions
            if video is not None:
                update["video"] = video
                recorder.video_codec = video
            if update:
                await ws.send(json.dumps({"type": "session.update", "session": update}))
                with contextlib.suppress(TimeoutError):  # an error event says why; go on
                    await _wait_for(
                        recorder,
                        lambda: recorder.first("session.updated") or recorder.first("error"),
                        10,
                    )
            for utterance in inputs:
                turns_before = _turns_finished(recorder)
                recorder.note(
                    {
                        "type": "client.input_started",
                        "file": str(utterance.path),
                        "speech_end_s": utterance.speech_end_s,
                    }
                )
                await _stream(ws, utterance.audio, 0, recorder)
                recorder.note({"type": "client.input_ended", "file": str(utterance.path)})
                talked_over = None
                if interrupt is not None:
                    talked_over = await _interrupt(
                        ws, recorder, interrupt, interrupt_after_s, reply_timeout_s
                    )
                # A person waits for the reply to finish playing before speaking again; after
                # an interruption, for the reply to it (the reply talked over may have been
                # done, as completed, before the interruption began).
                ok = await _silence_until(
                    ws,
                    recorder,
                    lambda b=turns_before, over=talked_over: (
                        (
                            _turns_finished(recorder) > b
                            if over is None
                            else _turns_finished(recorder, after_turn=over) > 0
                        )
                        and (not listen_to_end or not recorder.playing())
                    ),
                    reply_timeout_s,
                )
                if ok and not listen_to_end and recorder.playing():
                    await ws.send(json.dumps({"type": "response.cancel"}))
                    await _stream(ws, None, 0.3, recorder)
                if not ok:
                    recorder.note({"type": "client.timeout", "file": str(utterance.path)})
            if video not in (None, "off"):
                since = recorder.monotonic()
                await _silence_until(
                    ws, recorder, lambda: _video_settled(recorder, since), reply_timeout_s
                )
            await ws.send(json.dumps({"type": "conversation.get"}))
            await _wait_for(recorder, lambda: recorder.first("conversation.history"), 10)
        finally:
            reader.cancel()
    return recorder


async def _interrupt(
    ws: Any, recorder: Recorder, interrupt: Utterance, after_s: float, timeout_s: float
) -> int | None:
    """Speak `interrupt` `after_s` into the first reply's audio; the id of the turn talked over
    (None: no reply came to talk over)."""
    ok = await _silence_until(
        ws, recorder, lambda: recorder.first("response.audio") is not None, timeout_s
    )
    if not ok:
        return None
    first_audio = recorder.first("response.audio")
    assert first_audio is not None
    wait = first_audio["t"] + after_s - recorder.now()
    if wait > 0:
        await _stream(ws, None, wait, recorder)
    recorder.note(
        {
            "type": "client.input_started",
            "file": str(interrupt.path),
            "speech_end_s": interrupt.speech_end_s,
            "interrupting": True,
        }
    )
    await _stream(ws, interrupt.audio, 0, recorder)
    recorder.note({"type": "client.input_ended", "file": str(interrupt.path)})
    return int(first_audio["turn_id"])


def _video_settled(recorder: Recorder, since: float, idle_s: float = 1.5) -> bool:
    """The replies' video is complete, or no frame has come for `idle_s` (none will)."""
    last = max(recorder.last_video_at or since, since)
    return recorder.video_complete() or recorder.monotonic() - last > idle_s


def _turns_finished(recorder: Recorder, after_turn: int = 0) -> int:
    """Replies done for good (not interrupted), of turns after `after_turn`."""
    return sum(
        1
        for e in recorder.events
        if e["type"] == "response.done"
        and e["status"] in _FINAL_STATUSES
        and e["turn_id"] > after_turn
    )


async def _read(ws: Any, recorder: Recorder) -> None:
    async for message in ws:
        recorder.on_message(message)


async def _wait_for(recorder: Recorder, condition: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from the server in time")
        recorder.changed.clear()
        try:
            async with asyncio.timeout(remaining):
                await recorder.changed.wait()
        except TimeoutError:
            continue


def save_outputs(recorder: Recorder, output: str | None, events: str | None) -> None:
    if output:
        write_wav(output, recorder.played_audio(), recorder.output_rate or 22050)
    if events:
        with Path(events).open("w") as sink:
            for event in recorder.events:
                sink.write(json.dumps(event) + "\n")
