"""PlaybackClock: where the client's playback stands, with pauses."""

from __future__ import annotations

from dandelion.playback import PlaybackClock

RATE = 1_000  # samples per second: positions read as ms


def test_chunks_queue_behind_each_other() -> None:
    clock = PlaybackClock(RATE)
    clock.sent(500, at=10.0)
    clock.sent(500, at=10.1)  # arrives while the first plays: waits its turn
    assert clock.played_samples(10.25) == 250
    assert clock.played_samples(10.75) == 750
    assert clock.playing(10.99) and not clock.playing(11.0)


def test_a_pause_holds_the_position_and_the_resume_plays_the_rest_later() -> None:
    clock = PlaybackClock(RATE)
    clock.sent(1_000, at=0.0)
    clock.pause(0.4)
    assert clock.paused and not clock.playing(0.5)
    assert clock.played_samples(2.0) == 400  # held
    clock.sent(500, at=0.6)  # buffered behind what the client holds
    clock.resume(1.0)
    assert clock.played_samples(1.0) == 400
    assert clock.played_samples(1.3) == 700
    assert clock.end_s() == 2.1  # 1.5 s of audio, 0.6 s held
    assert clock.playing(2.0) and not clock.playing(2.1)


def test_pausing_what_is_not_playing_does_nothing() -> None:
    clock = PlaybackClock(RATE)
    clock.pause(0.0)
    assert not clock.paused
    clock.sent(100, at=0.0)
    clock.pause(5.0)  # long finished
    assert not clock.paused
    clock.resume(6.0)
    assert clock.played_samples(6.0) == 100
