"""Holds the avatar renderer resident; turns one chunk of reply speech into encoded video frames."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from dandelion.config import AvatarSettings

if TYPE_CHECKING:
    from dandelion.avatar.base import MouthParams

VIDEO_CODECS = ("jpeg", "h264")
# Frames per streamed batch: the first frame of a chunk leaves alone (it is due as soon as the
# chunk's audio starts playing), later ones in fives (fewer messages, still well ahead of time).
_BATCH = 5


class AvatarActor:
    def __init__(self, settings: dict[str, object]) -> None:
        from dandelion.avatar import LandmarkAvatar

        self.settings = AvatarSettings.model_validate(settings)
        # A photo without a face fails here, at start-up, with NoFaceFoundError.
        self._avatar = LandmarkAvatar(
            self.settings.portrait_path, size=self.settings.size, fps=self.settings.fps
        )
        # The renderer keeps per-frame scratch buffers: one render at a time per replica.
        self._lock = asyncio.Lock()

    async def video_format(self) -> dict[str, float]:
        size = self._avatar.size
        return {
            "fps": self.settings.fps,
            "idle_fps": self.settings.idle_fps,
            "width": size,
            "height": size,
        }

    async def still(self) -> bytes:
        """The portrait at rest, as a JPEG (what a client shows before the first reply)."""
        from dandelion.avatar import REST, JpegEncoder

        async with self._lock:
            frame = await asyncio.to_thread(self._avatar.render, REST, 0.0)
        return JpegEncoder(self.settings.jpeg_quality).encode(frame)[0].data

    async def render(
        self,
        pcm16: bytes,
        sample_rate: int,
        alignments: list[tuple[str, int]] | None,
        start_s: float,
        codec: str,
        face_s: float = 0.0,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Frames for the audio that starts `start_s` into the reply, in batches.

        Frame k of the reply is shown at k / fps on the reply's audio clock; each frame's
        `pts_us` says so. Phoneme timings drive the lips when given, loudness otherwise.
        `face_s`: the session's face time when the reply started, so blinks and head motion
        carry on from the idle frames before it instead of jumping back to their start.
        """
        from dandelion.avatar import EnvelopeDriver, viseme_track

        fps = self.settings.fps
        if alignments:
            track = viseme_track(alignments, sample_rate, fps, offset=start_s)
        else:
            # Same frame grid as viseme_track: frames that start while this audio plays.
            skip = math.ceil(start_s * fps - 1e-9) / fps - start_s
            offset = max(0, round(skip * sample_rate)) * 2
            track = EnvelopeDriver(fps).push(pcm16[offset:], sample_rate)
        first = math.ceil(start_s * fps - 1e-9)
        encoder = self._encoder(codec)
        batch: list[dict[str, Any]] = []
        for index, params in enumerate(track):
            t = (first + index) / fps
            batch += await self._frame(encoder, params, face_s + t, pts_s=t)
            if len(batch) >= (1 if index == 0 else _BATCH):
                yield batch
                batch = []
        for packet in encoder.flush():
            batch.append({"pts_us": round((first + packet.pts) / fps * 1e6), "data": packet.data})
        if batch:
            yield batch

    async def idle(self, start_s: float, count: int, codec: str) -> list[dict[str, Any]]:
        """`count` frames of the face at rest (breathing, blinks, sway) at `idle_fps`.

        Frame i is the face at `start_s + i / idle_fps` on the session's face clock; its
        `pts_us` is that time. The caller paces them out in real time while nobody hears a reply.
        """
        from dandelion.avatar import REST

        fps = self.settings.idle_fps
        if fps <= 0 or count <= 0:
            return []
        encoder = self._encoder(codec, fps)
        frames: list[dict[str, Any]] = []
        for index in range(count):
            t = start_s + index / fps
            frames += await self._frame(encoder, REST, t, pts_s=t)
        for packet in encoder.flush():
            t = start_s + packet.pts / fps
            frames.append({"pts_us": round(t * 1e6), "data": packet.data})
        return frames

    async def _frame(
        self, encoder: Any, params: MouthParams, t: float, pts_s: float
    ) -> list[dict[str, Any]]:
        """The face at `t` on the face clock, encoded, stamped `pts_s`, with its cost."""
        async with self._lock:
            started = time.perf_counter()
            image = await asyncio.to_thread(self._avatar.render, params, t)
        packets = encoder.encode(image)
        seconds = time.perf_counter() - started  # render + encode: the per-frame cost
        pts_us = round(pts_s * 1e6)
        return [{"pts_us": pts_us, "data": p.data, "seconds": seconds} for p in packets]

    def _encoder(self, codec: str, fps: float | None = None) -> Any:
        from dandelion.avatar import H264Encoder, JpegEncoder

        if codec == "h264":
            # A new encoder per chunk: each chunk starts with a keyframe, so a client can join
            # at any chunk and a dropped chunk (barge-in) leaves no broken references.
            size = self._avatar.size
            return H264Encoder(size, size, fps or self.settings.fps)
        return JpegEncoder(self.settings.jpeg_quality)
