"""The thin client's playback on `response.audio.paused` / `resumed` / `interrupted`: live mode's
sound-card queue (`_Player`, pulled as the sound card pulls it) and file mode's `Recorder` (fed
real protocol messages, on a fake clock)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from dandelion_client.file_mode import Recorder
from dandelion_client.live import _Player, _show

from dandelion.protocol import MediaFrame, MediaKind, encode_media_frame

RATE = 1_000  # output samples per second: 1 sample = 1 ms, 2 bytes


def _ramp(first: int, samples: int) -> bytes:
    """PCM16 samples first, first + 1, ...: where each one ends up can be read back."""
    return np.arange(first, first + samples, dtype="<i2").tobytes()


def _audio(turn: int, seq: int, pts_ms: int, pcm: bytes) -> bytes:
    return encode_media_frame(MediaFrame(MediaKind.AUDIO, turn, seq, pts_ms * 1000, pcm))


def _event(**fields: Any) -> str:
    return json.dumps(fields)


# live mode ---------------------------------------------------------------------------------------


def test_a_paused_player_sends_silence_keeps_its_queue_and_resumes_where_it_was() -> None:
    player = _Player(RATE)
    _show(_audio(1, 0, 0, _ramp(1, 300)), player, None)
    assert player.pull(200) == _ramp(1, 100)
    assert player.position_us(1) == 100_000
    _show(_event(type="response.audio.paused", turn_id=1, played_ms=100), player, None)
    assert not player.playing and player.holding
    assert player.pull(200) == bytes(200)  # silence, nothing consumed
    assert player.position_us(1) == 100_000  # the turn's clock (and its video) stands still
    _show(_audio(1, 1, 300, _ramp(301, 100)), player, None)  # still comes: queued behind
    _show(_event(type="response.audio.resumed", turn_id=1), player, None)
    assert player.playing
    # Every sample once, in order, from where it paused.
    assert player.pull(600) == _ramp(101, 300)
    assert player.position_us(1) == 400_000
    assert not player.holding


def test_an_interruption_after_a_pause_drops_the_turn() -> None:
    player = _Player(RATE)
    _show(_audio(1, 0, 0, _ramp(1, 300)), player, None)
    player.pull(100)
    _show(_event(type="response.audio.paused", turn_id=1, played_ms=50), player, None)
    event = _event(type="response.interrupted", turn_id=1, played_ms=50, heard_text="")
    _show(event, player, None)
    _show(_audio(1, 1, 300, _ramp(301, 100)), player, None)  # in flight: dropped
    assert not player.holding and player.pull(100) == bytes(100)


def test_a_new_turns_audio_drops_the_paused_one() -> None:
    player = _Player(RATE)
    _show(_audio(1, 0, 0, _ramp(1, 300)), player, None)
    _show(_event(type="response.audio.paused", turn_id=1, played_ms=0), player, None)
    _show(_audio(2, 0, 0, _ramp(1000, 50)), player, None)
    assert player.playing and 1 in player.turn_cut
    assert player.pull(100) == _ramp(1000, 50)
    _show(_event(type="response.audio.resumed", turn_id=1), player, None)  # too late: no-op
    _show(_audio(1, 1, 300, _ramp(301, 10)), player, None)
    assert player.pull(100) == bytes(100)


def test_a_resume_of_another_turn_leaves_the_pause_alone() -> None:
    player = _Player(RATE)
    _show(_audio(3, 0, 0, _ramp(1, 100)), player, None)
    player.pause(3)
    player.resume(2)
    assert player.pull(20) == bytes(20)


def test_live_mode_prints_pause_and_resume(capsys: pytest.CaptureFixture[str]) -> None:
    player = _Player(RATE)
    _show(_event(type="response.audio.paused", turn_id=1, played_ms=830), player, None)
    _show(_event(type="response.audio.resumed", turn_id=1), player, None)
    _show(_event(type="response.audio.played", turn_id=1), player, None)  # nothing to do
    assert capsys.readouterr().out.split() == ["[paused", "after", "830", "ms]", "[resumed]"]


# file mode ---------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _recorder() -> tuple[Recorder, FakeClock]:
    clock = FakeClock()
    recorder = Recorder(monotonic=clock)
    recorder.on_message(_event(type="session.created", output_audio={"sample_rate": RATE}))
    return recorder, clock


def test_file_mode_holds_a_paused_reply_and_keeps_all_of_it_when_resumed() -> None:
    recorder, clock = _recorder()
    recorder.on_message(_audio(1, 0, 0, _ramp(1, 500)))  # plays 100.0 - 100.5
    clock.t = 100.25
    recorder.on_message(_event(type="response.audio.paused", turn_id=1, played_ms=250))
    clock.t = 101.0  # long after the audio would have ended unpaused
    assert recorder.playing()  # held: the person waits for it
    recorder.on_message(_audio(1, 1, 500, _ramp(501, 100)))
    recorder.on_message(_event(type="response.audio.resumed", turn_id=1))
    clock.t = 101.3  # 0.3 s of the 0.35 s left played since the resume
    assert recorder.playing()
    clock.t = 101.36
    assert not recorder.playing()
    assert bytes(recorder.audio[1]) == _ramp(1, 600)
    kinds = [e["type"] for e in recorder.events]
    assert kinds.count("response.audio.paused") == kinds.count("response.audio.resumed") == 1


def test_file_mode_cuts_an_interrupted_reply_at_its_pause() -> None:
    recorder, clock = _recorder()
    recorder.on_message(_audio(1, 0, 0, _ramp(1, 500)))
    clock.t = 100.25
    recorder.on_message(_event(type="response.audio.paused", turn_id=1, played_ms=250))
    clock.t = 100.5
    event = _event(type="response.interrupted", turn_id=1, played_ms=250, heard_text="")
    recorder.on_message(event)
    assert bytes(recorder.audio[1]) == _ramp(1, 250)  # heard up to the pause, not to the stop
    assert recorder.cut_at[1] == 500 and not recorder.playing()


def test_file_mode_drops_a_paused_reply_when_a_new_ones_audio_comes() -> None:
    recorder, clock = _recorder()
    recorder.on_message(_audio(1, 0, 0, _ramp(1, 500)))
    clock.t = 100.25
    recorder.on_message(_event(type="response.audio.paused", turn_id=1, played_ms=250))
    clock.t = 100.75
    recorder.on_message(_audio(2, 0, 0, _ramp(1, 100)))
    assert bytes(recorder.audio[1]) == _ramp(1, 250)
    assert recorder.playing()  # turn 2 now, 100.75 - 100.85
    clock.t = 100.875
    assert not recorder.playing()
