"""The replies as one MP4 (file mode's `--video`): the avatar's video over the audio as played.

The timeline is the played audio of every turn back to back, as `Recorder.played_audio()`.
Output frame k shows at k / fps on it: the frame of the turn playing then whose pts is the
latest not after the time into that turn (a frame is held until the next one), or the turn's
first frame before that one is due. A turn that got no frame at all holds the previous picture.

Video: H.264 (libx264, yuv420p). Audio: AAC, FFmpeg's native encoder (what every MP4 player
takes; PCM in MP4 is not). The audio is padded with silence to the end of the last video frame
(less than a frame), so both streams last the same. Only JPEG frames are decoded here.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from dandelion.errors import BackendUnavailableError
from dandelion_client.file_mode import Recorder

INSTALL_HINT = "pip install 'dandelion[avatar]'"


def check_dependencies() -> None:
    """Raise BackendUnavailableError, saying what to install, if PyAV or simplejpeg is missing."""
    _modules()


def _modules() -> tuple[Any, Any]:
    try:
        import av
        import simplejpeg
    except ImportError as exc:
        raise BackendUnavailableError(
            f"writing the video needs PyAV and simplejpeg ({exc.name} is missing): {INSTALL_HINT}"
        ) from exc
    return av, simplejpeg


@dataclass(frozen=True, slots=True)
class Mp4Summary:
    frames: int
    seconds: float
    turns_without_video: list[int] = field(default_factory=list)


FrameRef = tuple[int, int]
"""(turn id, index into that turn's frames sorted by pts)."""


def frame_plan(recorder: Recorder, fps: float) -> tuple[list[FrameRef | None], list[int]]:
    """The received frame shown at each output frame time, and the turns that had no frames.

    None: no turn before or at that time had any frame (the caller fills it from later ones).
    """
    rate = recorder.output_rate
    if rate <= 0:
        raise ValueError("no audio format: the recording has no session.created")
    frame_rate = _rational(fps)
    turns = [(turn, len(recorder.audio[turn]) // 2) for turn in sorted(recorder.audio)]
    turns = [(turn, samples) for turn, samples in turns if samples > 0]
    total = sum(samples for _, samples in turns)
    count = math.ceil(Fraction(total, rate) * frame_rate)
    pts = {turn: sorted(p for p, _ in recorder.video.get(turn, [])) for turn, _ in turns}
    plan: list[FrameRef | None] = []
    previous: FrameRef | None = None
    index, start = 0, 0  # the current turn, and its first sample on the timeline
    for k in range(count):
        at = k / frame_rate * rate  # in samples, exact
        while at >= start + turns[index][1]:
            start += turns[index][1]
            index += 1
        turn = turns[index][0]
        if pts[turn]:
            into_us = (at - start) * 1_000_000 / rate
            previous = (turn, max(bisect.bisect_right(pts[turn], into_us) - 1, 0))
        plan.append(previous)
    return plan, [turn for turn, _ in turns if not pts[turn]]


def write_mp4(path: str | Path, recorder: Recorder, fps: float | None = None) -> Mp4Summary:
    """Write the recorded replies, video and audio, to `path` (MP4). `fps`: the server's."""
    av, simplejpeg = _modules()
    if recorder.video_codec not in ("jpeg", "off"):
        raise ValueError(f"only JPEG video frames can be written, not {recorder.video_codec!r}")
    fps = fps or recorder.video_fps
    planned, missing = frame_plan(recorder, fps)
    if not planned:
        raise ValueError("no reply audio was played: nothing to write")
    first = next((ref for ref in planned if ref is not None), None)
    if first is None:
        raise ValueError("no video frames came: is the avatar enabled on the server?")
    plan = [first if ref is None else ref for ref in planned]  # before any frame: the first
    frames = {turn: sorted(recorder.video[turn], key=lambda f: f[0]) for turn, _ in set(plan)}

    def decode(ref: FrameRef) -> Any:
        rgb = simplejpeg.decode_jpeg(frames[ref[0]][ref[1]][1], colorspace="RGB")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")

    rate = recorder.output_rate
    frame_rate = _rational(fps)
    pcm = np.frombuffer(recorder.played_audio(), dtype="<i2")
    padded = math.ceil(len(plan) / frame_rate * rate)
    pcm = np.concatenate([pcm, np.zeros(max(padded - len(pcm), 0), np.int16)])

    picture = decode(plan[0])
    width, height = picture.width - picture.width % 2, picture.height - picture.height % 2
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=frame_rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.thread_count = 2
        video.options = {"preset": "veryfast", "crf": "23"}
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        shown = plan[0]
        sent = 0  # audio samples encoded so far
        for k, ref in enumerate(plan):
            if ref != shown:
                picture, shown = decode(ref), ref
            out = picture.reformat(width=width, height=height, format="yuv420p")
            out.pts = k
            container.mux(video.encode(out))
            upto = math.ceil((k + 1) / frame_rate * rate)
            if upto > sent:
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(pcm[None, sent:upto]), format="s16", layout="mono"
                )
                chunk.sample_rate, chunk.pts = rate, sent
                container.mux(audio.encode(chunk))
                sent = upto
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return Mp4Summary(len(plan), len(plan) / fps, missing)


def _rational(fps: float) -> Fraction:
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)
