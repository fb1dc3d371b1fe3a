"""The avatar through the real app: video beside the reply's audio, muxed into an MP4."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import read_events, run_client

pytestmark = pytest.mark.integration


def test_reply_mp4_has_avatar_video_as_long_as_its_audio(
    server_url: str, speech: dict[str, Path], tmp_path: Path
) -> None:
    import av

    mp4, events_path = tmp_path / "reply.mp4", tmp_path / "events.jsonl"
    run_client(server_url, "--input", speech["capital"], "--video", mp4, "--events", events_path)
    events = read_events(events_path)
    created = next(e for e in events if e["type"] == "session.created")
    fps = created["output_video"]["fps"]
    assert created["output_video"]["width"] == 512
    # Between replies the face moves on its own: idle frames (turn 0), never while the reply
    # plays (from its first audio frame until all of its audio was sent).
    idle = [e for e in events if e["type"] == "idle.video"]
    assert idle and all(e["turn_id"] == 0 for e in idle)
    first_audio = next(e["t"] for e in events if e["type"] == "response.audio")
    audio_done = next(e["t"] for e in events if e["type"] == "response.audio.done")
    assert not [e for e in idle if first_audio < e["t"] < audio_done]
    video_events = [e for e in events if e["type"] == "response.video"]
    audio_events = [e for e in events if e["type"] == "response.audio"]
    assert video_events and audio_events
    # Frames are stamped on the audio's clock: the first at 0, the last within the audio.
    audio_end_us = max(e["pts_us"] for e in audio_events)
    assert min(e["pts_us"] for e in video_events) == 0
    assert max(e["pts_us"] for e in video_events) <= audio_end_us + 200_000 + 1_000_000 / fps
    with av.open(str(mp4)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        video_s = float(video.duration * video.time_base)
        audio_s = float(audio.duration * audio.time_base)
        assert abs(video_s - audio_s) <= 1 / fps + 1e-3, (video_s, audio_s)
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= round(video_s * fps) - 1
