"""What moves besides the mouth, as pure functions of time: blinks, head sway, idle drift.

Everything is deterministic for a given seed and time, so a frame can be rendered for any t in
any order (and a test can reproduce it).
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass

from dandelion.avatar.base import MouthParams

_CLOSE_S = 0.07
_HOLD_S = 0.04
_OPEN_S = 0.12


class BlinkSchedule:
    """Blinks at natural, irregular intervals: 2-8 s apart (mean ~4 s), sometimes doubled.

    A blink closes in 70 ms, stays shut 40 ms and reopens in 120 ms.
    """

    def __init__(self, seed: int = 0, first_after: float = 1.5) -> None:
        self._random = random.Random(seed)
        self._starts: list[float] = [first_after]

    def _extend(self, until: float) -> None:
        while self._starts[-1] < until + 10.0:
            last = self._starts[-1]
            if self._random.random() < 0.12:
                self._starts.append(last + 0.35 + 0.1 * self._random.random())
            self._starts.append(self._starts[-1] + 2.0 + min(6.0, self._random.expovariate(0.5)))

    def amount(self, t: float) -> float:
        """0 open .. 1 shut."""
        if t < 0:
            return 0.0
        self._extend(t)
        index = bisect.bisect_right(self._starts, t) - 1
        if index < 0:
            return 0.0
        dt = t - self._starts[index]
        if dt < _CLOSE_S:
            x = dt / _CLOSE_S
        elif dt < _CLOSE_S + _HOLD_S:
            return 1.0
        elif dt < _CLOSE_S + _HOLD_S + _OPEN_S:
            x = 1.0 - (dt - _CLOSE_S - _HOLD_S) / _OPEN_S
        else:
            return 0.0
        return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True, slots=True)
class Pose:
    """A small head movement: degrees of roll, shift in fractions of the frame, scale."""

    angle: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0


def _phases(seed: int, count: int) -> list[float]:
    rng = random.Random(seed * 7919 + 17)
    return [rng.uniform(0.0, 2.0 * math.pi) for _ in range(count)]


def head_pose(t: float, seed: int = 0, speaking: float = 0.0, breathing: bool = True) -> Pose:
    """Slow sway from incommensurate sines (never repeats visibly), a touch livelier while
    speaking (`speaking` 0..1, e.g. the jaw opening), and breathing."""
    p = _phases(seed, 6)
    tau = 2.0 * math.pi
    energy = 1.0 + 0.6 * speaking
    angle = energy * (
        0.9 * math.sin(tau * 0.11 * t + p[0]) + 0.35 * math.sin(tau * 0.29 * t + p[1])
    )
    dx = energy * (
        0.004 * math.sin(tau * 0.07 * t + p[2]) + 0.0015 * math.sin(tau * 0.23 * t + p[3])
    )
    dy = 0.003 * math.sin(tau * 0.09 * t + p[4]) + 0.004 * speaking
    scale = 1.0
    if breathing:
        dy += 0.0015 * math.sin(tau * 0.22 * t + p[5])
        scale += 0.002 * math.sin(tau * 0.22 * t + p[5])
    return Pose(angle=angle, dx=dx, dy=dy, scale=scale)


def idle_mouth(params: MouthParams, t: float, seed: int = 0) -> MouthParams:
    """At rest the lips are not frozen: a faint, slow drift of width and pressure."""
    quiet = max(0.0, 1.0 - params.jaw_open / 0.08)
    if quiet <= 0.0:
        return params
    p = _phases(seed + 1, 2)
    tau = 2.0 * math.pi
    width = 0.08 * math.sin(tau * 0.05 * t + p[0]) + 0.04 * math.sin(tau * 0.13 * t + p[1])
    return MouthParams(
        jaw_open=params.jaw_open,
        lip_width=params.lip_width + quiet * width,
        rounding=params.rounding,
        teeth=params.teeth,
        tongue=params.tongue,
    )
