"""Live mode: microphone in, speaker out, transcripts and replies printed as they come."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from typing import Any

import numpy as np

from dandelion.protocol import INPUT_SAMPLE_RATE, MediaKind, decode_media_frame

_BLOCK = INPUT_SAMPLE_RATE // 50  # 20 ms


class _Player:
    """A byte queue the sound card pulls from; `clear()` stops playback at once (barge-in)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self.turn_cut: set[int] = set()

    def push(self, pcm: bytes) -> None:
        with self._lock:
            self._buffer.extend(pcm)

    def clear(self) -> None:
        with self._lock:
            self._buffer.clear()

    @property
    def playing(self) -> bool:
        return bool(self._buffer)

    def pull(self, num_bytes: int) -> bytes:
        with self._lock:
            out = bytes(self._buffer[:num_bytes])
            del self._buffer[:num_bytes]
        return out + b"\x00" * (num_bytes - len(out))


async def run_live(
    url: str,
    input_device: str | int | None,
    output_device: str | int | None,
    mute_while_playing: bool,
) -> None:
    import sounddevice as sd
    import websockets

    player = _Player()
    mic: queue.Queue[bytes] = queue.Queue()

    def on_mic(data: Any, frames: int, time_info: Any, status: Any) -> None:
        if mute_while_playing and player.playing:
            data = np.zeros_like(data)  # half duplex: no echo without acoustic echo cancelling
        mic.put(bytes(data))

    def on_speaker(out: Any, frames: int, time_info: Any, status: Any) -> None:
        out[:] = np.frombuffer(player.pull(frames * 2), dtype="<i2").reshape(-1, 1)

    async with websockets.connect(url, max_size=None) as ws:
        created = json.loads(await ws.recv())
        rate = int(created["output_audio"]["sample_rate"])
        print(f"connected: session {created['session_id']} ({created['protocol']}); speak now.")
        with (
            sd.RawInputStream(INPUT_SAMPLE_RATE, _BLOCK, input_device, 1, "int16", callback=on_mic),
            sd.OutputStream(rate, 0, output_device, 1, "int16", callback=on_speaker),
        ):
            sender = asyncio.create_task(_send_mic(ws, mic))
            try:
                async for message in ws:
                    _show(message, player)
            finally:
                sender.cancel()


async def _send_mic(ws: Any, mic: queue.Queue[bytes]) -> None:
    while True:
        pcm = await asyncio.to_thread(mic.get)
        await ws.send(pcm)


def _show(message: str | bytes, player: _Player) -> None:
    if isinstance(message, bytes):
        frame = decode_media_frame(message)
        if frame.kind == MediaKind.AUDIO and frame.turn_id not in player.turn_cut:
            player.push(frame.payload)
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
        player.turn_cut.add(int(event["turn_id"]))
        player.clear()
        print(f"\n  [interrupted after {event['played_ms']} ms]")
    elif kind == "error":
        print(f"\n  [error {event['code']}: {event['message']}]")
