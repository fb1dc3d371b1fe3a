"""Where the client's playback of a reply stands, estimated from when audio was sent.

The client plays audio as it arrives; a chunk that arrives while earlier audio still plays waits
its turn. So each chunk starts at max(its send time, the end of the previous one). Pure: the
caller passes the times in.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PlaybackClock:
    """Times are the caller's monotonic seconds; positions are samples at `sample_rate`.

    `pause`/`resume` follow the client's playback being held (speech over the reply): what was
    not played at the pause plays after the resume, later by the pause's length.
    """

    sample_rate: int
    _spans: list[tuple[float, int]] = field(default_factory=list)  # (play start s, samples)
    _end: float = 0.0
    _paused_at: float | None = None

    def sent(self, num_samples: int, at: float) -> None:
        # While paused, the client buffers it behind what it holds.
        start = self._end if self.paused else max(at, self._end)
        self._spans.append((start, num_samples))
        self._end = start + num_samples / self.sample_rate

    @property
    def started(self) -> bool:
        return bool(self._spans)

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def end_s(self) -> float:
        """When the audio sent so far will have finished playing (if not paused again)."""
        return self._end

    def playing(self, now: float) -> bool:
        return self.started and not self.paused and now < self._end

    def pause(self, now: float) -> None:
        if self.playing(now):
            self._paused_at = now

    def resume(self, now: float) -> None:
        paused_at = self._paused_at
        if paused_at is None:
            return
        gap = max(0.0, now - paused_at)
        spans = []
        for start, samples in self._spans:
            if start >= paused_at:
                spans.append((start + gap, samples))
            elif start + samples / self.sample_rate <= paused_at:
                spans.append((start, samples))
            else:  # cut at the pause: its rest plays after the resume
                played = int((paused_at - start) * self.sample_rate)
                spans += [(start, played), (paused_at + gap, samples - played)]
        self._spans = spans
        self._end += gap
        self._paused_at = None

    def played_samples(self, now: float) -> int:
        if self._paused_at is not None:
            now = min(now, self._paused_at)
        played = 0
        for start, samples in self._spans:
            if now <= start:
                break
            played += min(samples, int((now - start) * self.sample_rate))
        return played
