"""The simulated person's loudspeaker: reply audio played as a client plays it. Pure: times in.

Each turn's audio frames play back to back from their arrival (a frame that arrives while earlier
audio plays waits its turn), as docs/protocol.md §9 asks of clients. `response.audio.paused` holds
a turn's playback where it is (what is not played yet, and frames that still arrive, wait);
`response.audio.resumed` plays on from there. Playback of a turn stops on its
`response.interrupted` (after a pause: it went silent at the pause), and when a newer turn's
audio starts. What plays is kept at 16 kHz, so the microphone can pick it up again (echo) and the
bench can transcribe what was heard.
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
    end_t: float = 0.0  # when the scheduled audio runs out
    stop_t: float | None = None
    paused_at: float | None = None
    held: list[Samples] = field(default_factory=list)  # not played at the pause, in order
    pauses: int = 0
    paused_s: float = 0.0  # time held, over all pauses (to the resume, or to the stop)

    def played_until(self) -> float:
        return self.end_t if self.stop_t is None else min(self.stop_t, self.end_t)

    def pause(self, at: float, rate: int) -> None:
        """Hold playback at `at`: the unplayed rest of each piece moves to `held`."""
        kept: list[tuple[float, Samples]] = []
        for start, piece in zip(self.starts, self.audio, strict=True):
            played = min(len(piece), max(0, round((at - start) * rate)))
            if played:
                kept.append((start, piece[:played]))
            if played < len(piece):
                self.held.append(piece[played:])
        self.starts = [start for start, _ in kept]
        self.audio = [piece for _, piece in kept]
        if self.held:
            self.end_t = at  # the scheduled audio now runs out here
        self.paused_at = at
        self.pauses += 1

    def resume(self, at: float, rate: int) -> None:
        """Play what was held back to back from `at` (it has all arrived)."""
        if self.paused_at is None:
            return
        self.paused_s += max(0.0, at - self.paused_at)
        cursor = max(at, self.end_t)
        for piece in self.held:
            self.audio.append(piece)
            self.starts.append(cursor)
            cursor += len(piece) / rate
        if self.held:
            self.end_t = cursor
        self.held = []
        self.paused_at = None


class Loudspeaker:
    """Feed it each reply audio frame as it arrives (`play`), hold it on a pause (`pause`,
    `resume`), stop it on an interruption (`stop`)."""

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
        if track.paused_at is not None:
            track.held.append(samples)  # buffered behind what the pause held
            return
        start = max(at, track.end_t)
        track.audio.append(samples)
        track.starts.append(start)
        track.end_t = start + len(samples) / self._rate

    def pause(self, turn_id: int, at: float) -> None:
        """`response.audio.paused`: the turn goes silent at `at`, keeping what it has not played."""
        track = self._tracks.get(turn_id)
        if track is not None and track.stop_t is None and track.paused_at is None:
            track.pause(at, self._rate)

    def resume(self, turn_id: int, at: float) -> None:
        """`response.audio.resumed`: the turn plays on from where it paused."""
        track = self._tracks.get(turn_id)
        if track is not None and track.stop_t is None and track.paused_at is not None:
            track.resume(at, self._rate)

    def stop(self, turn_id: int, at: float) -> None:
        """The turn's playback is over (after a pause: it went silent at the pause); what it has
        not played is dropped."""
        track = self._tracks.get(turn_id)
        if track is not None and track.stop_t is None:
            track.stop_t = at
            if track.paused_at is not None:
                track.paused_s += max(0.0, at - track.paused_at)

    def stop_all(self, at: float) -> None:
        for turn_id in self._tracks:
            self.stop(turn_id, at)

    def playing(self, now: float) -> bool:
        """Some reply sounds at `now` (a paused one does not)."""
        return any(t.start_t <= now < t.played_until() for t in self._tracks.values())

    def holding(self) -> bool:
        """Some reply is paused with audio left to play: it will resume or be interrupted."""
        return any(
            t.paused_at is not None and t.stop_t is None and t.held for t in self._tracks.values()
        )

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
                cut=track.stop_t is not None and (track.stop_t < track.end_t or bool(track.held)),
                played_s=played,
                pauses=track.pauses,
                paused_s=track.paused_s,
            )
        return records
