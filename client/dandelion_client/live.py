"""Live mode: microphone in, speaker out, transcripts and replies printed as they come, and the
avatar in a window (when the server has one and there is a screen).

The microphone's sound is downmixed to mono without letting its channels cancel (`downmix.py`),
then the speaker's echo is taken out of it (`echo_cancel.py`, on unless turned off).
"""

from __future__ import annotations

import asyncio
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from dandelion.protocol import IDLE_TURN_ID, INPUT_SAMPLE_RATE, MediaKind, decode_media_frame
from dandelion_client.downmix import MicDownmix

_BLOCK = INPUT_SAMPLE_RATE // 50  # 20 ms


class _Player:
    """A byte queue the sound card pulls from; `clear()` stops playback at once (barge-in),
    `pause()` holds it where it is (speech over the reply) and `resume()` plays on from there.

    It also knows where each turn's audio sits in the stream, so the avatar window can show a
    frame when the speaker reaches the frame's time on the turn's clock (a paused turn's clock
    stands still, and so does its picture).
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.output_latency_s = 0.0  # set once the sound card's stream is open
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._pulled = 0  # bytes of the stream handed to the sound card so far
        self._origins: dict[int, int] = {}  # turn -> stream byte where its pts 0 falls
        self._paused: int | None = None  # the turn held, if any
        self.turn_cut: set[int] = set()

    def push(self, turn: int, pts_us: int, pcm: bytes) -> int | None:
        """Queue a turn's audio; the turn it drops, if it is a new turn's over a paused one."""
        with self._lock:
            dropped = None
            if self._paused is not None and turn != self._paused:
                dropped, self._paused = self._paused, None  # superseded: its audio goes
                self.turn_cut.add(dropped)
                self._buffer.clear()
            if turn not in self._origins:
                queued_at = self._pulled + len(self._buffer)
                self._origins[turn] = queued_at - round(pts_us * self.rate / 1e6) * 2
            self._buffer.extend(pcm)
            return dropped

    def clear(self) -> None:
        with self._lock:
            self._buffer.clear()
            self._paused = None

    def pause(self, turn: int) -> None:
        """Silence from the next block on, keeping what is queued (and what still comes)."""
        with self._lock:
            if turn not in self.turn_cut:
                self._paused = turn

    def resume(self, turn: int) -> None:
        with self._lock:
            if self._paused == turn:
                self._paused = None

    @property
    def playing(self) -> bool:
        """Reply audio is sounding (not while paused)."""
        return bool(self._buffer) and self._paused is None

    @property
    def holding(self) -> bool:
        """A reply is sounding or paused with audio still to play: its face stays on screen."""
        return bool(self._buffer) or self._paused is not None

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
            if self._paused is not None:
                return b"\x00" * num_bytes  # the stream (and each turn's clock) stands still
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
    echo_cancel: bool = True  # WebRTC's echo canceller on the microphone (needs `livekit`)
    api_key: str | None = None  # sent as `Authorization: Bearer` (docs/security.md)


_MAX_RECONNECT_WAIT_S = 8.0
CLOSE_POLICY = 1008
"""A limit broken (docs/protocol.md §11): reconnecting would break it again."""
CLOSE_TAKEN_OVER = 4000
"""The server's close code for a conversation another connection resumed (docs/protocol.md)."""


class _ServerBusy(Exception):
    """The server is full (`server_busy`): ask again after `retry_after_s`."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"the server is full: retrying in {retry_after_s:g} s")
        self.retry_after_s = retry_after_s


async def run_live(options: LiveOptions) -> None:
    """Talk until Ctrl-C, `duration_s`, the window closes or the server ends the session. A
    lost connection (network, a restarted server, a full one) is opened again after a growing
    pause, going on with the same conversation (session.created's resume_token)."""
    import websockets

    deadline = None if options.duration_s is None else time.monotonic() + options.duration_s
    token: str | None = None
    wait_s = 0.5
    while True:
        try:
            lost, token = await _live_connection(options, token, deadline)
        except websockets.InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise  # a key or origin the server refuses: retrying will not help
            lost = True
            print(f"the server refused the connection: HTTP {exc.response.status_code}")
        except OSError as exc:  # the server is not there (yet): restarting, or the network
            lost = True
            print(f"cannot connect: {exc}")
        except _ServerBusy as busy:
            lost = True
            print(busy)
            wait_s = max(wait_s, busy.retry_after_s)
        if not lost or (deadline is not None and time.monotonic() >= deadline):
            return
        resuming = "the same conversation" if token else "a new conversation"
        print(f"reconnecting in {wait_s:.1f} s ({resuming}); Ctrl-C to stop.")
        await asyncio.sleep(wait_s)
        wait_s = min(wait_s * 2, _MAX_RECONNECT_WAIT_S)


async def _live_connection(
    options: LiveOptions, resume_token: str | None, deadline: float | None
) -> tuple[bool, str | None]:
    """One connection: (whether it was lost rather than ended, the token to resume with)."""
    import sounddevice as sd
    import websockets

    channels = _mic_channels(sd, options.input_device)
    mixer = MicDownmix(INPUT_SAMPLE_RATE, "the microphone", _warn) if channels > 1 else None
    mic: queue.Queue[bytes] = queue.Queue()
    from dandelion_client.file_mode import api_key_headers, with_resume_token

    headers = api_key_headers(options.api_key)
    url = with_resume_token(options.url, resume_token) if resume_token else options.url
    lost = False
    async with websockets.connect(url, max_size=None, additional_headers=headers) as ws:
        created = json.loads(await ws.recv())
        if created.get("type") == "error" and created.get("code") == "server_busy":
            raise _ServerBusy(float(created.get("retry_after_s") or 1.0))
        if created.get("type") != "session.created":
            print(f"the server refused the session: {created.get('message', created)}")
            return False, resume_token
        resume_token = created.get("resume_token") or None
        player = _Player(int(created["output_audio"]["sample_rate"]))
        canceller = None
        if options.echo_cancel:
            from dandelion_client.echo_cancel import EchoCanceller

            canceller = EchoCanceller(INPUT_SAMPLE_RATE, player.rate)

        def on_mic(data: Any, frames: int, time_info: Any, status: Any) -> None:
            pcm = data.tobytes() if mixer is None else _mono_pcm(mixer, data)
            if canceller is not None:
                pcm = canceller.capture(pcm)
            if options.mute_while_playing and player.playing:
                pcm = bytes(len(pcm))  # half duplex: no echo, whatever the room
            mic.put(pcm)

        def on_speaker(out: Any, frames: int, time_info: Any, status: Any) -> None:
            pcm = player.pull(frames * 2)
            out[:] = np.frombuffer(pcm, dtype="<i2").reshape(-1, 1)
            if canceller is not None:
                canceller.render(pcm)  # the far end, as the sound card gets it

        view = await _open_window(ws, created, player, options.video)
        again = " (the same conversation)" if created.get("resumed") else ""
        print(
            f"connected: session {created['session_id']} ({created['protocol']}){again}; speak now."
        )
        try:
            with (
                sd.InputStream(
                    INPUT_SAMPLE_RATE,
                    _BLOCK,
                    options.input_device,
                    channels,
                    "int16",
                    callback=on_mic,
                ) as microphone,
                sd.OutputStream(
                    player.rate, 0, options.output_device, 1, "int16", callback=on_speaker
                ) as speaker,
            ):
                player.output_latency_s = float(speaker.latency)
                if canceller is not None:
                    canceller.delay_ms = (float(speaker.latency) + float(microphone.latency)) * 1e3
                sender = asyncio.create_task(_send_mic(ws, mic))
                try:
                    while deadline is None or time.monotonic() < deadline:
                        if view is not None and view.window.closed:
                            break
                        try:
                            async with asyncio.timeout(0.2):
                                message = await ws.recv()
                        except TimeoutError:
                            continue
                        except websockets.ConnectionClosedOK:
                            print("the server ended the session.")
                            break
                        except websockets.ConnectionClosedError as exc:
                            ended = (CLOSE_POLICY, CLOSE_TAKEN_OVER)
                            if exc.rcvd is not None and exc.rcvd.code in ended:
                                # A limit broken, or resumed elsewhere: reconnecting would
                                # break it again, or take the conversation back.
                                print(f"session ended: {exc.rcvd.reason}")
                                break
                            print(f"connection lost: {exc}")
                            lost = True
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
    return lost, resume_token


_MAX_REAL_CHANNELS = 64
"""More input channels than this is PortAudio not knowing (it says 128 for an ALSA plug device,
whose upmix of a mono source need not be copies): such a device is opened mono, as before."""


def _mic_channels(sd: Any, device: str | int | None) -> int:
    """Two where the microphone has several channels (so they are mixed here, where a
    cancelling pair is caught, rather than by the driver), else one."""
    try:
        available = int(sd.query_devices(device, "input")["max_input_channels"])
    except (ValueError, sd.PortAudioError):
        return 1  # no such input: opening the stream says so
    return 2 if 2 <= available <= _MAX_REAL_CHANNELS else 1


def _mono_pcm(mixer: MicDownmix, block: Any) -> bytes:
    """A block of PCM16 channels -> PCM16 mono, as `mixer` mixes it."""
    mono = mixer(block.astype(np.float32) / 32768.0)
    return np.clip(np.round(mono * 32768.0), -32768, 32767).astype("<i2").tobytes()


def _warn(message: str) -> None:
    print(f"\n{message}", file=sys.stderr)


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
        lambda: player.holding,
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
            dropped = player.push(frame.turn_id, frame.pts_us, frame.payload)
            if dropped is not None and view is not None:
                view.window.cut(dropped)
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
    elif kind == "response.audio.paused":
        player.pause(int(event["turn_id"]))  # the window's frames wait on the turn's clock
        print(f"\n  [paused after {event['played_ms']} ms]")
    elif kind == "response.audio.resumed":
        player.resume(int(event["turn_id"]))
        print("\n  [resumed]")
    elif kind == "error":
        print(f"\n  [error {event['code']}: {event['message']}]")
