"""Live mode: microphone in, speaker out, transcripts and replies printed as they come, and the
avatar in a window (when the server has one and there is a screen)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from dandelion.protocol import IDLE_TURN_ID, INPUT_SAMPLE_RATE, MediaKind, decode_media_frame

_BLOCK = INPUT_SAMPLE_RATE // 50  # 20 ms


class _Player:
    """A byte queue the sound card pulls from; `clear()` stops playback at once (barge-in).

    It also knows where each turn's audio sits in the stream, so the avatar window can show a
    frame when the speaker reaches the frame's time on the turn's clock.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.output_latency_s = 0.0  # set once the sound card's stream is open
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._pulled = 0  # bytes handed to the sound card so far
        self._origins: dict[int, int] = {}  # turn -> stream byte where its pts 0 falls
        self.turn_cut: set[int] = set()

    def push(self, turn: int, pts_us: int, pcm: bytes) -> None:
        with self._lock:
            if turn not in self._origins:
                queued_at = self._pulled + len(self._buffer)
                self._origins[turn] = queued_at - round(pts_us * self.rate / 1e6) * 2
            self._buffer.extend(pcm)

    def clear(self) -> None:
        with self._lock:
            self._buffer.clear()

    @property
    def playing(self) -> bool:
        return bool(self._buffer)

    def position_us(self, turn: int) -> float | None:
        """µs of `turn`'s audio heard so far (None before it starts playing)."""
        with self._lock:
            origin = self._origins.get(turn)
            pulled = self._pulled
        if origin is None or pulled <= origin:
            return None
        return (pulled - origin) / 2 / self.rate * 1e6 - self.output_latency_s * 1e6

    def pull(self, num_bytes: int) -> bytes:
        with self._lock:
            out = bytes(self._buffer[:num_bytes])
            del self._buffer[:num_bytes]
            self._pulled += num_bytes
        return out + b"\x00" * (num_bytes - len(out))


@dataclass
class LiveOptions:
    url: str
    input_device: str | int | None = None
    output_device: str | int | None = None
    mute_while_playing: bool = False
    video: str | None = "jpeg"  # the avatar's codec in the window; None: no window
    duration_s: float | None = None  # stop after this long (None: until Ctrl-C)


async def run_live(options: LiveOptions) -> None:
    import sounddevice as sd
    import websockets

    mic: queue.Queue[bytes] = queue.Queue()
    async with websockets.connect(options.url, max_size=None) as ws:
        created = json.loads(await ws.recv())
        player = _Player(int(created["output_audio"]["sample_rate"]))

        def on_mic(data: Any, frames: int, time_info: Any, status: Any) -> None:
            if options.mute_while_playing and player.playing:
                data = np.zeros_like(data)  # half duplex: no echo without echo cancelling
            mic.put(bytes(data))

        def on_speaker(out: Any, frames: int, time_info: Any, status: Any) -> None:
            out[:] = np.frombuffer(player.pull(frames * 2), dtype="<i2").reshape(-1, 1)

        view = await _open_window(ws, created, player, options.video)
        print(f"connected: session {created['session_id']} ({created['protocol']}); speak now.")
        started = time.monotonic()
        try:
            with (
                sd.RawInputStream(
                    INPUT_SAMPLE_RATE, _BLOCK, options.input_device, 1, "int16", callback=on_mic
                ),
                sd.OutputStream(
                    player.rate, 0, options.output_device, 1, "int16", callback=on_speaker
                ) as speaker,
            ):
                player.output_latency_s = float(speaker.latency)
                sender = asyncio.create_task(_send_mic(ws, mic))
                try:
                    while options.duration_s is None or (
                        time.monotonic() - started < options.duration_s
                    ):
                        if view is not None and view.window.closed:
                            break
                        try:
                            message = await asyncio.wait_for(ws.recv(), timeout=0.2)
                        except TimeoutError:
                            continue
                        except websockets.ConnectionClosedOK:
                            print("the server ended the session.")
                            break
                        except websockets.ConnectionClosedError as exc:
                            print(f"connection lost: {exc}")
                            break
                        _show(message, player, view)
                finally:
                    sender.cancel()
        finally:
            if view is not None:
                view.window.close()
                print(
                    f"video: {view.window.reply_frames_shown} reply frames and "
                    f"{view.window.idle_frames_shown} idle frames shown"
                )


@dataclass
class _View:
    window: Any  # AvatarWindow
    reply_decoder: Any  # FrameDecoder; idle frames get their own, as they are their own stream
    idle_decoder: Any


async def _open_window(ws: Any, created: dict[str, Any], player: _Player, codec: str | None) -> Any:
    """The avatar window, once the server agreed to send video; None without avatar or screen."""
    video = created.get("output_video") or {}
    if codec is None or not video.get("width"):
        return None
    from dandelion.errors import BackendUnavailableError
    from dandelion_client.video_window import AvatarWindow, FrameDecoder, NoDisplayError

    window = AvatarWindow(
        "Dandelion",
        (int(video["width"]), int(video["height"])),
        player.position_us,
        lambda: player.playing,
    )
    try:
        decoders = FrameDecoder(codec), FrameDecoder(codec)
        window.open()
    except (NoDisplayError, ImportError, BackendUnavailableError) as exc:
        print(f"no avatar window ({exc}); audio only.")
        return None
    await ws.send(json.dumps({"type": "session.update", "session": {"video": codec}}))
    return _View(window, *decoders)


def _next_block(mic: queue.Queue[bytes]) -> bytes | None:
    # A short wait, so the worker thread is free soon after the sender is cancelled (asyncio
    # waits for its threads at exit).
    try:
        return mic.get(timeout=0.1)
    except queue.Empty:
        return None


async def _send_mic(ws: Any, mic: queue.Queue[bytes]) -> None:
    while True:
        pcm = await asyncio.to_thread(_next_block, mic)
        if pcm is not None:
            await ws.send(pcm)


def _show(message: str | bytes, player: _Player, view: _View | None) -> None:
    if isinstance(message, bytes):
        frame = decode_media_frame(message)
        if frame.turn_id in player.turn_cut:
            return  # in flight when its playback stopped
        if frame.kind == MediaKind.AUDIO:
            player.push(frame.turn_id, frame.pts_us, frame.payload)
        elif frame.kind == MediaKind.VIDEO and view is not None:
            if frame.turn_id == IDLE_TURN_ID:
                for image in view.idle_decoder.decode(frame.payload):
                    view.window.idle_frame(image)
            else:
                for image in view.reply_decoder.decode(frame.payload):
                    view.window.reply_frame(frame.turn_id, frame.pts_us, image)
        return
    event = json.loads(message)
    kind = event["type"]
    if kind == "transcript.partial":
        print(f"\r  you (partial): {event['text']}", end="", flush=True)
    elif kind == "transcript.final":
        print(f"\r  you: {event['text']}")
    elif kind == "response.text.delta":
        print(event["delta"], end="", flush=True)
    elif kind == "response.started":
        print("  assistant: ", end="", flush=True)
    elif kind == "response.text.done":
        print()
    elif kind == "response.interrupted":
        turn = int(event["turn_id"])
        player.turn_cut.add(turn)
        player.clear()
        if view is not None:
            view.window.cut(turn)
        print(f"\n  [interrupted after {event['played_ms']} ms]")
    elif kind == "error":
        print(f"\n  [error {event['code']}: {event['message']}]")
