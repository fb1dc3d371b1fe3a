"""A long turn transcribed as it goes, so no word is lost to Whisper's 30 s window. Pure.

While the user speaks on and on, every `piece_ms` of speech the session transcribes the part
before the quietest moment of the last few seconds (between words, not inside one) and keeps its
text. When the turn ends, only the rest is transcribed with the reply, and the turn's transcript
is the pieces' text followed by the rest's. A turn of any length keeps every word, and the audio
transcribed at its end stays short.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

_CUT_SEARCH_MS = 3_000  # the cut is the quietest moment of this much audio...
_CUT_GUARD_MS = 300  # ...ending this long before now (the speaker may be mid-word at now)
_FRAME_MS = 32


def quietest_point_ms(pcm16: npt.NDArray[np.int16], start_ms: int, sample_rate: int) -> int:
    """The start (ms, on the same clock as `start_ms`) of the quietest 32 ms frame in `pcm16`,
    audio that begins at `start_ms`. Ties go to the latest."""
    frame = sample_rate * _FRAME_MS // 1000
    count = len(pcm16) // frame
    if count == 0:
        return start_ms
    frames = pcm16[: count * frame].astype(np.float64).reshape(count, frame)
    energy = (frames**2).mean(axis=1)
    quietest = count - 1 - int(np.argmin(energy[::-1]))
    return start_ms + quietest * _FRAME_MS


@dataclass
class TurnPieces:
    """Earlier pieces of the current turn: their text, and where the untranscribed rest begins.

    `due(now_ms)` says when a piece should be transcribed and where it should end; the session
    transcribes [`rest_start_ms`, cut) and calls `done(cut, text)` (or `abandon()` on failure).
    One piece at a time.
    """

    piece_ms: int = 12_000
    rest_start_ms: int = 0
    texts: list[str] = field(default_factory=list)
    pending_end_ms: int | None = None

    def reset(self, start_ms: int) -> None:
        """A new turn begins at `start_ms` (pre-roll included)."""
        self.rest_start_ms = start_ms
        self.texts = []
        self.pending_end_ms = None

    @property
    def prefix(self) -> str:
        return " ".join(t for t in self.texts if t)

    def search_window(self, now_ms: int) -> tuple[int, int] | None:
        """Where to look for the cut, when a piece is due: (start, end) in ms; else None."""
        if not self.piece_ms or self.pending_end_ms is not None:
            return None
        if now_ms - self.rest_start_ms < self.piece_ms:
            return None
        end = now_ms - _CUT_GUARD_MS
        return max(self.rest_start_ms, end - _CUT_SEARCH_MS), end

    def start(self, cut_ms: int) -> tuple[int, int]:
        """A piece [rest_start_ms, cut_ms) goes to the recognizer."""
        self.pending_end_ms = cut_ms
        return self.rest_start_ms, cut_ms

    def done(self, text: str) -> None:
        assert self.pending_end_ms is not None
        self.texts.append(text.strip())
        self.rest_start_ms = self.pending_end_ms
        self.pending_end_ms = None

    def abandon(self) -> None:
        """The piece was not transcribed: its audio stays in the rest."""
        self.pending_end_ms = None
