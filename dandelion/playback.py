"""Where the client's playback of a reply stands, estimated from when audio was sent.

The client plays audio as it arrives; a chunk that arrives while earlier audio still plays waits
its turn. So each chunk starts at max(its send time, the end of the previous one). Pure: the
caller passes the times in.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PlaybackClock:
    sample_rate: int
    _spans: list[tuple[float, int]] = field(default_factory=list)  # (play start s, samples)
    _end: float = 0.0

    def sent(self, num_samples: int, at: float) -> None:
        start = max(at, self._end)
        self._spans.append((start, num_samples))
        self._end = start + num_samples / self.sample_rate

    @property
    def started(self) -> bool:
        return bool(self._spans)

    def playing(self, now: float) -> bool:
        return self.started and now < self._end

    def played_samples(self, now: float) -> int:
        played = 0
        for start, samples in self._spans:
            if now <= start:
                break
            played += min(samples, int((now - start) * self.sample_rate))
        return played
