"""The simulated person's loudspeaker: reply audio played as a client plays it. Pure: times in.

Each turn's audio frames play back to back from their arrival (a frame that arrives while earlier
audio plays waits its turn), as docs/protocol.md §9 asks of clients. Playback of a turn stops on
its `response.interrupted`, and when a newer turn's audio starts. What plays is kept at 16 kHz,
so the microphone can pick it up again (echo) and the bench can transcribe what was heard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dandelion.eval.timeline import Playback

RATE = 16_000
Samples = npt.NDArray[np.float32]


@dataclass
class _Track:
    """One turn's reply audio on the loudspeaker's timeline."""

    start_t: float
    audio: list[Samples] = field(default_factory=list)  # pieces at the output rate
    starts: list[float] = field(default_factory=list)  # when each piece starts playing
    end_t: float = 0.0  # when the queued audio runs out
    stop_t: float | None = None

    def played_until(self) -> float:
        return self.end_t if self.stop_t is None else min(self.stop_t, self.end_t)


class Loudspeaker:
    """Feed it each reply audio frame as it arrives (`play`), stop it on an interruption."""

    def __init__(self, output_rate: int) -> None:
        self._rate = output_rate
        self._tracks: dict[int, _Track] = {}

    def play(self, turn_id: int, pcm16: bytes, at: float) -> None:
        """A frame of PCM16LE at the output rate arrived at client time `at`."""
        for other in self._tracks:
            if other != turn_id:
                self.stop(other, at)  # a new reply's audio: the old one is over
        if turn_id not in self._tracks:
            self._tracks[turn_id] = _Track(start_t=at, end_t=at)
        track = self._tracks[turn_id]
        if track.stop_t is not None:
            return  # stopped: a player drops what comes later
        samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
        start = max(at, track.end_t)
        track.audio.append(samples)
        track.starts.append(start)
        track.end_t = start + len(samples) / self._rate

    def stop(self, turn_id: int, at: float) -> None:
        track = self._tracks.get(turn_id)
        if track is not None and track.stop_t is None:
            track.stop_t = at

    def stop_all(self, at: float) -> None:
        for turn_id in self._tracks:
            self.stop(turn_id, at)

    def playing(self, now: float) -> bool:
        return any(t.start_t <= now < t.played_until() for t in self._tracks.values())

    def first_audio_t(self, turn_id: int) -> float | None:
        track = self._tracks.get(turn_id)
        return None if track is None else track.start_t

    def render(self, start: float, samples: int) -> Samples:
        """What the loudspeaker emits over `samples` 16 kHz samples from client time `start`
        (linear interpolation: this is the echo's path, a small share of the signal)."""
        times = start + np.arange(samples) / RATE
        out = np.zeros(samples, dtype=np.float32)
        for track in self._tracks.values():
            until = track.played_until()
            if until <= start or track.start_t >= times[-1]:
                continue
            for piece_start, piece in zip(track.starts, track.audio, strict=True):
                piece_end = min(until, piece_start + len(piece) / self._rate)
                if piece_end <= start or piece_start > times[-1]:
                    continue
                inside = (times >= piece_start) & (times < piece_end)
                if inside.any():
                    position = (times[inside] - piece_start) * self._rate
                    out[inside] += np.interp(position, np.arange(len(piece)), piece).astype(
                        np.float32
                    )
        return out

    def played(self, turn_id: int) -> Samples:
        """The turn's audio as it was heard, up to where playback stopped, at 16 kHz."""
        import soxr

        track = self._tracks.get(turn_id)
        if track is None or not track.audio:
            return np.zeros(0, dtype=np.float32)
        until = track.played_until()
        heard = [
            piece[: max(0, round((min(until, s + len(piece) / self._rate) - s) * self._rate))]
            for s, piece in zip(track.starts, track.audio, strict=True)
        ]
        audio = np.concatenate(heard)
        if not len(audio):
            return audio
        return np.asarray(soxr.resample(audio, self._rate, RATE), dtype=np.float32)

    def record(self) -> dict[int, Playback]:
        """Each turn's playback, as far as it went (call once the run is over)."""
        records = {}
        for turn_id, track in self._tracks.items():
            end = track.played_until()
            played = sum(
                max(0.0, min(end, s + len(p) / self._rate) - s)
                for s, p in zip(track.starts, track.audio, strict=True)
            )
            records[turn_id] = Playback(
                start_t=track.start_t,
                end_t=end,
                cut=track.stop_t is not None and track.stop_t < track.end_t,
                played_s=played,
            )
        return records
