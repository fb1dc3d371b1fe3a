"""Blinks, sway and idle drift: natural ranges, deterministic for a seed."""

from __future__ import annotations

import numpy as np

from dandelion.avatar.base import MouthParams
from dandelion.avatar.motion import BlinkSchedule, head_pose, idle_mouth


def _blink_starts(schedule: BlinkSchedule, seconds: float) -> np.ndarray:
    times = np.arange(0.0, seconds, 0.01)
    shut = np.array([schedule.amount(float(t)) > 0 for t in times])
    return times[1:][np.diff(shut.astype(int)) == 1]


def test_blinks_come_at_natural_irregular_intervals() -> None:
    starts = _blink_starts(BlinkSchedule(seed=1), 600.0)
    gaps = np.diff(starts)
    assert 2.0 < float(np.mean(gaps)) < 6.0  # people blink every 2-10 s in conversation
    assert gaps.min() > 0.3 and gaps.max() < 8.5
    assert float(np.std(gaps)) > 0.5  # not a metronome


def test_a_blink_is_quick_and_complete() -> None:
    schedule = BlinkSchedule(seed=0, first_after=1.0)
    amounts = [schedule.amount(1.0 + k / 1000) for k in range(400)]
    assert max(amounts) == 1.0
    assert sum(a > 0 for a in amounts) < 240  # shut and open again within a quarter second
    assert schedule.amount(-1.0) == 0.0 and schedule.amount(0.5) == 0.0


def test_the_same_seed_gives_the_same_blinks_in_any_order() -> None:
    times = [7.3, 0.2, 55.0, 3.1, 12.9]
    first = [BlinkSchedule(seed=5).amount(t) for t in times]
    schedule = BlinkSchedule(seed=5)
    assert [schedule.amount(t) for t in reversed(times)][::-1] == first


def test_head_sway_is_small_and_smooth() -> None:
    poses = [head_pose(k / 25, seed=2, speaking=1.0) for k in range(25 * 60)]
    angles = np.array([p.angle for p in poses])
    shifts = np.array([(p.dx, p.dy) for p in poses])
    assert np.abs(angles).max() < 2.5  # degrees
    assert np.abs(shifts).max() < 0.015  # of the frame
    assert np.abs(np.diff(angles)).max() < 0.1  # per frame: no jitter
    assert 0.99 < min(p.scale for p in poses) <= max(p.scale for p in poses) < 1.01


def test_idle_drift_touches_only_a_resting_mouth() -> None:
    speaking = MouthParams(jaw_open=0.5, lip_width=0.2)
    assert idle_mouth(speaking, 3.0) == speaking
    drifts = [idle_mouth(MouthParams(), t).lip_width for t in np.arange(0, 30, 0.5)]
    assert 0.02 < max(abs(d) for d in drifts) < 0.15
