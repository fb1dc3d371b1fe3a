"""The simulated person's loudspeaker and microphone: playback timing, cuts, echo, span clocks."""

from __future__ import annotations

import numpy as np

from dandelion.eval.microphone import FRAME, Microphone
from dandelion.eval.scenario import Echo
from dandelion.eval.speaker import RATE, Loudspeaker

OUT = 22_050


def _tone(seconds: float, rate: int = OUT, hz: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2").tobytes()


def test_frames_play_back_to_back_from_their_arrival() -> None:
    speaker = Loudspeaker(OUT)
    speaker.play(1, _tone(0.2), at=1.0)
    speaker.play(1, _tone(0.2), at=1.05)  # arrives while the first plays: waits its turn
    assert not speaker.playing(0.99)
    assert speaker.playing(1.39)
    assert not speaker.playing(1.41)
    record = speaker.record()[1]
    assert (record.start_t, record.cut) == (1.0, False)
    assert abs(record.end_t - 1.4) < 1e-9
    assert abs(record.played_s - 0.4) < 0.01


def test_stop_cuts_playback_and_later_frames_are_dropped() -> None:
    speaker = Loudspeaker(OUT)
    speaker.play(3, _tone(1.0), at=0.0)
    speaker.stop(3, at=0.25)
    speaker.play(3, _tone(1.0), at=0.3)
    record = speaker.record()[3]
    assert record.cut and record.end_t == 0.25
    assert abs(len(speaker.played(3)) / RATE - 0.25) < 0.01
    assert not speaker.playing(0.3)


def test_a_new_reply_stops_the_old_one() -> None:
    speaker = Loudspeaker(OUT)
    speaker.play(1, _tone(2.0), at=0.0)
    speaker.play(2, _tone(0.5), at=0.5)
    records = speaker.record()
    assert records[1].cut and records[1].end_t == 0.5
    assert not records[2].cut


def test_render_is_what_plays_when() -> None:
    speaker = Loudspeaker(OUT)
    speaker.play(1, _tone(0.5), at=1.0)
    assert not speaker.render(0.5, RATE // 4).any()  # before the reply
    during = speaker.render(1.2, RATE // 10)
    assert 0.3 < float(np.sqrt(np.mean(during**2))) < 0.4  # a 0.5-amplitude sine: RMS 0.35
    assert not speaker.render(1.6, RATE // 10).any()  # after it ended


def test_microphone_sends_the_utterance_then_silence_and_records_its_clock() -> None:
    mic = Microphone(Loudspeaker(OUT))
    for _ in range(5):  # 100 ms of silence first
        assert not np.frombuffer(mic.frame(), "<i2").any()
    audio = np.full(RATE, 0.25, dtype=np.float32)  # one second
    mic.speak(0, audio, ((1600, 8000),))
    frames = [mic.frame() for _ in range(RATE // FRAME)]
    assert not mic.busy
    assert all(np.frombuffer(f, "<i2").min() > 8000 for f in frames)
    (record,) = mic.records
    assert (record.audio_start_ms, record.audio_end_ms) == (100, 1100)
    (span,) = record.spans
    assert (span.start_ms, span.end_ms) == (200, 600)
    assert (span.start_t, span.end_t) == (0.2, 0.6)  # captured in real time from client time 0


def test_echo_is_the_played_reply_delayed_and_attenuated() -> None:
    speaker = Loudspeaker(OUT)
    mic = Microphone(speaker, Echo(level_db=-20, delay_ms=100))
    speaker.play(1, _tone(1.0), at=0.0)
    first = np.frombuffer(mic.frame(), "<i2")  # captures 0-20 ms: the echo has not arrived
    assert not first.any()
    for _ in range(10):
        mic.frame()
    later = np.frombuffer(mic.frame(), "<i2").astype(np.float32) / 32767
    assert abs(float(np.sqrt(np.mean(later**2))) - 0.35 * 0.1) < 0.005  # -20 dB of the reply


def test_stop_all_ends_every_reply_and_leaves_new_ones_free() -> None:
    speaker = Loudspeaker(OUT)
    speaker.play(1, _tone(2.0), at=0.0)
    speaker.stop_all(at=0.5)  # a new turn began
    speaker.play(2, _tone(0.5), at=0.6)
    records = speaker.record()
    assert records[1].cut and records[1].end_t == 0.5
    assert not records[2].cut and speaker.playing(0.7)


def _ramp(samples: int) -> bytes:
    """Distinct, increasing samples (0, 1, 2, ...): where each one plays can be read back."""
    return np.arange(samples, dtype="<i2").tobytes()


def test_a_paused_then_resumed_reply_plays_every_sample_in_order_with_a_gap() -> None:
    speaker = Loudspeaker(RATE)  # at 16 kHz, `played` is the samples themselves
    speaker.play(1, _ramp(RATE // 2), at=0.0)  # 0.5 s
    speaker.pause(1, at=0.2)
    assert not speaker.playing(0.3) and speaker.holding()
    speaker.play(1, _ramp(RATE // 4), at=0.4)  # arrives while paused: waits behind the rest
    speaker.resume(1, at=1.0)
    assert speaker.playing(1.0) and not speaker.holding()
    # The rest of the first frame (0.3 s), then the second (0.25 s), from the resume on.
    assert speaker.playing(1.54) and not speaker.playing(1.56)
    record = speaker.record()[1]
    assert not record.cut and record.pauses == 1 and abs(record.paused_s - 0.8) < 1e-9
    assert abs(record.end_t - 1.55) < 1e-3
    assert abs(record.played_s - 0.75) < 1e-3
    # Every sample, once, in order: the pause drops and repeats nothing.
    expected = np.concatenate((np.arange(RATE // 2), np.arange(RATE // 4))) / 32768.0
    assert np.array_equal(speaker.played(1), expected.astype(np.float32))
    # Silent from the pause to the resume, sounding on either side.
    assert speaker.render(0.1, RATE // 20).any()
    assert not speaker.render(0.25, RATE // 2).any()
    assert speaker.render(1.1, RATE // 20).any()


def test_an_interruption_after_a_pause_stops_the_reply_at_the_pause() -> None:
    speaker = Loudspeaker(OUT)
    speaker.play(2, _tone(2.0), at=1.0)
    speaker.pause(2, at=1.5)
    speaker.play(2, _tone(0.2), at=1.6)  # held, then dropped with the rest
    speaker.stop(2, at=1.9)  # response.interrupted
    speaker.resume(2, at=2.0)  # too late: nothing plays again
    assert not speaker.playing(2.1) and not speaker.holding()
    record = speaker.record()[2]
    assert record.cut and record.end_t == 1.5  # silent since the pause, not since the stop
    assert (record.pauses, abs(record.paused_s - 0.4) < 1e-9) == (1, True)
    assert abs(record.played_s - 0.5) < 1e-3
    assert abs(len(speaker.played(2)) / RATE - 0.5) < 0.01


def test_a_new_replys_audio_drops_a_paused_one() -> None:
    speaker = Loudspeaker(OUT)
    speaker.play(1, _tone(2.0), at=0.0)
    speaker.pause(1, at=0.5)
    speaker.play(2, _tone(0.5), at=0.9)
    records = speaker.record()
    assert records[1].cut and records[1].end_t == 0.5
    assert speaker.playing(1.0) and not speaker.holding()


def test_no_echo_while_the_reply_is_paused() -> None:
    speaker = Loudspeaker(OUT)
    mic = Microphone(speaker, Echo(level_db=-20, delay_ms=0))
    speaker.play(1, _tone(2.0), at=0.0)
    speaker.pause(1, at=0.2)  # frames 0-9 capture the reply, 10-29 the pause
    frames = [np.frombuffer(mic.frame(), "<i2") for _ in range(30)]
    assert all(f.any() for f in frames[:10])
    assert not any(f.any() for f in frames[10:])
    speaker.resume(1, at=0.6)
    assert np.frombuffer(mic.frame(), "<i2").any()  # 0.6-0.62 s: the reply again
