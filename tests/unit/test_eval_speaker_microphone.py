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
