"""Acoustic echo cancelling for live mode: what the speaker plays is taken out of the microphone.

Without it, the assistant hears its own reply through the room and takes it for the person
speaking. The canceller is WebRTC's audio processing module (AEC3) as LiveKit's Python SDK ships
it (`livekit`, Apache-2.0; wheels for Linux, macOS and Windows). It runs in this process: no
LiveKit server, account or network.

The far end (what the speaker plays, silence included, when it is handed to the sound card) goes
in as WebRTC's render stream; the microphone goes through its capture stream. Both are cut into
10 ms frames at the microphone's rate, the speaker's audio resampled to it. AEC3 finds the delay
between the two by itself, up to about 400 ms; where the sound cards' latencies add up to more
(Windows' MME, some Bluetooth), the speaker's frames are held back to bring it within reach.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from dandelion.errors import BackendUnavailableError

if TYPE_CHECKING:
    from livekit import rtc

INSTALL_HINT = "pip install 'dandelion[client]'"
FRAME_MS = 10
MAX_DELAY_MS = 500  # the most WebRTC takes as a delay hint
LEAD_MS = 200
"""The speaker's frames go in at most this far ahead of their echo, as far as the sound cards'
latencies tell (AEC3 misses echoes over ~400 ms late, and those under ~20 ms early)."""


def check_dependencies() -> None:
    """Raise BackendUnavailableError, saying what to install, if LiveKit's SDK is missing."""
    try:
        from livekit import rtc  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(
            f"echo cancelling needs LiveKit's SDK (`livekit`; {exc.name} is missing): "
            f"{INSTALL_HINT}, or turn it off with --no-echo-cancel"
        ) from exc


class EchoCanceller:
    """WebRTC's echo canceller between one speaker and one microphone (PCM16 mono both).

    `render` takes what the speaker plays, from the speaker's callback; `capture` takes the
    microphone's audio, from the microphone's callback, and gives it back with the echo removed.
    Each side buffers what is short of a whole 10 ms frame until its next call.
    """

    def __init__(self, mic_rate: int, speaker_rate: int, delay_ms: float = 0.0) -> None:
        if mic_rate % (1000 // FRAME_MS):
            raise ValueError(f"the microphone's rate ({mic_rate} Hz) has no whole 10 ms frame")
        check_dependencies()
        import soxr
        from livekit import rtc

        self._apm = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
        self._audio_frame = rtc.AudioFrame
        self.mic_rate = mic_rate
        self.speaker_rate = speaker_rate
        self.delay_ms = delay_ms
        """The speaker's output latency + the microphone's input latency."""
        self._frame = mic_rate * FRAME_MS // 1000
        self._resampler = (
            None
            if speaker_rate == mic_rate
            # Quick (cubic) resampling holds nothing back: HQ's filter keeps ~20 ms, and AEC3
            # needs the render stream well ahead of the echo (it failed up to 50 ms with HQ,
            # while quick cancels as deeply from 20 ms on).
            else soxr.ResampleStream(speaker_rate, mic_rate, 1, dtype="int16", quality="QQ")
        )
        self._rendered = bytearray()
        self._held: deque[rtc.AudioFrame] = deque()  # rendered frames not given to AEC3 yet
        self._captured = bytearray()
        self._lock = threading.Lock()  # one call into the canceller at a time

    def render(self, pcm: bytes) -> None:
        """What the speaker plays (at `speaker_rate`), as it is handed to the sound card."""
        if self._resampler is not None:
            samples = np.frombuffer(pcm, dtype="<i2")
            pcm = self._resampler.resample_chunk(samples).astype("<i2").tobytes()
        self._rendered.extend(pcm)
        self._held.extend(self._frames(self._rendered))
        while len(self._held) > self._hold_frames():
            with self._lock:
                self._apm.process_reverse_stream(self._held.popleft())

    def capture(self, pcm: bytes) -> bytes:
        """The microphone's audio (at `mic_rate`) -> the same without the speaker's echo, in
        whole 10 ms frames (what is left over comes out of the next call)."""
        self._captured.extend(pcm)
        out = bytearray()
        delay_ms = self.delay_ms - self._hold_frames() * FRAME_MS
        delay_ms = min(MAX_DELAY_MS, max(0, round(delay_ms)))
        for frame in self._frames(self._captured):
            with self._lock:
                self._apm.set_stream_delay_ms(delay_ms)
                self._apm.process_stream(frame)
            out.extend(frame.data.tobytes())
        return bytes(out)

    def _hold_frames(self) -> int:
        return max(0, int((self.delay_ms - LEAD_MS) // FRAME_MS))

    def _frames(self, buffer: bytearray) -> list[rtc.AudioFrame]:
        """The whole 10 ms frames at the head of `buffer`, taken out of it."""
        size = self._frame * 2
        count = len(buffer) // size
        frames = [
            self._audio_frame(buffer[i * size : (i + 1) * size], self.mic_rate, 1, self._frame)
            for i in range(count)
        ]
        del buffer[: count * size]
        return frames
