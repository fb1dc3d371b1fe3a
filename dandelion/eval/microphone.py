"""The simulated person's microphone: one 20 ms frame at a time. Pure: times in, bytes out.

It captures the person's own voice (one utterance at a time, as built) plus, with echo, what the
loudspeaker plays, delayed and attenuated. Frame k holds what was captured during client time
[k * 20 ms, (k + 1) * 20 ms): frames are numbered on an ideal real-time schedule, so a late send
(a busy event loop) delays the audio's arrival at the server, as a real network would, without
moving where the speech was spoken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dandelion.eval.scenario import Echo
from dandelion.eval.speaker import RATE, Loudspeaker
from dandelion.eval.timeline import Span, UtteranceRecord

FRAME_MS = 20
FRAME = RATE * FRAME_MS // 1000  # samples
_MS = RATE // 1000


@dataclass
class _Speaking:
    index: int
    audio: npt.NDArray[np.float32]
    spans: tuple[tuple[int, int], ...]
    start: int  # stream sample where it began
    sent: int = 0


class Microphone:
    def __init__(self, speaker: Loudspeaker, echo: Echo | None = None, keep: bool = False) -> None:
        self._speaker = speaker
        self._echo = echo
        self._kept: list[bytes] | None = [] if keep else None
        self._frames = 0
        self._speaking: _Speaking | None = None
        self.records: list[UtteranceRecord] = []
        """Utterances fully sent, in order."""

    @property
    def busy(self) -> bool:
        return self._speaking is not None

    @property
    def now_t(self) -> float:
        """Client time at the end of the last frame captured."""
        return self._frames * FRAME_MS / 1000

    def speak(
        self, index: int, audio: npt.NDArray[np.float32], spans: tuple[tuple[int, int], ...]
    ) -> None:
        """Start saying an utterance (16 kHz mono) from the next frame on."""
        if self._speaking is not None:
            raise RuntimeError("the person is still speaking")
        self._speaking = _Speaking(index, audio, spans, start=self._frames * FRAME)

    def frame(self) -> bytes:
        """The next frame, PCM16LE; its capture ends at client time `now_t` after this call."""
        start_t = self.now_t
        out = np.zeros(FRAME, dtype=np.float32)
        speaking = self._speaking
        if speaking is not None:
            piece = speaking.audio[speaking.sent : speaking.sent + FRAME]
            out[: len(piece)] += piece
            speaking.sent += len(piece)
            if speaking.sent >= len(speaking.audio):
                self._finish(speaking)
        if self._echo is not None:
            gain = 10 ** (self._echo.level_db / 20)
            out += gain * self._speaker.render(start_t - self._echo.delay_ms / 1000, FRAME)
        self._frames += 1
        frame = (np.clip(out, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        if self._kept is not None:
            self._kept.append(frame)
        return frame

    def recording(self) -> bytes:
        """Every frame sent so far, PCM16LE at 16 kHz (empty unless made with `keep`)."""
        return b"".join(self._kept or [])

    def _finish(self, speaking: _Speaking) -> None:
        def span(lo: int, hi: int) -> Span:
            a, b = speaking.start + lo, speaking.start + hi
            return Span(a // _MS, b // _MS, a / RATE, b / RATE)

        self.records.append(
            UtteranceRecord(
                index=speaking.index,
                spans=tuple(span(lo, hi) for lo, hi in speaking.spans),
                audio_start_ms=speaking.start // _MS,
                audio_end_ms=(speaking.start + len(speaking.audio)) // _MS,
            )
        )
        self._speaking = None
