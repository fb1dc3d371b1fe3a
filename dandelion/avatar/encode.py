"""Frames to bytes for the wire: H.264 packets (PyAV / libx264) or JPEG images (simplejpeg).

H.264 (`H264Encoder`): ultrafast preset, zerolatency tune (no B-frames, no lookahead: each frame
comes out as soon as it goes in), yuv420p, Annex B byte stream with SPS/PPS repeated before
every keyframe, so a client that joins late starts decoding at the next keyframe (every
`keyframe_interval` frames, default 2 s). About 0.3 Mbit/s for a 512x512 talking head.
JPEG (`JpegEncoder`): every frame stands alone; ~30x the bytes, no decoder state at all.

libx264 inside PyAV's wheel is GPL-2.0-or-later; JPEG is the encoder without that condition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from dandelion.avatar.base import Frame
from dandelion.errors import BackendUnavailableError


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes
    """One H.264 access unit (Annex B) or one JPEG image."""
    pts: int
    """Frame index since the encoder started: shown at pts / fps seconds."""
    keyframe: bool


class H264Encoder:
    def __init__(
        self,
        width: int,
        height: int,
        fps: float = 25.0,
        *,
        crf: int = 28,
        keyframe_interval: int | None = None,
        threads: int = 1,
    ) -> None:
        try:
            import av
        except ImportError as exc:
            raise BackendUnavailableError("PyAV is not installed: pip install av") from exc
        if width % 2 or height % 2:
            raise ValueError(f"H.264 with yuv420p needs even sizes, got {width}x{height}")
        rate = Fraction(fps).limit_denominator(1001)
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.time_base = 1 / rate
        codec.framerate = rate
        codec.gop_size = keyframe_interval or max(1, round(2 * fps))
        codec.thread_count = threads
        codec.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "crf": str(crf),
            "repeat-headers": "1",
        }
        codec.open()
        self._codec = codec
        self._av = av
        self._next_pts = 0
        self.width, self.height, self.fps = width, height, fps

    def encode(self, frame: Frame) -> list[EncodedFrame]:
        """Packets for one RGB frame (with zerolatency: exactly one, for this frame)."""
        video = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video.pts = self._next_pts
        self._next_pts += 1
        return self._collect(self._codec.encode(video))

    def flush(self) -> list[EncodedFrame]:
        return self._collect(self._codec.encode(None))

    def _collect(self, packets: Iterable[object]) -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        for packet in packets:
            assert isinstance(packet, self._av.Packet)
            out.append(EncodedFrame(bytes(packet), int(packet.pts or 0), bool(packet.is_keyframe)))
        return out


class JpegEncoder:
    def __init__(self, quality: int = 80) -> None:
        try:
            import simplejpeg
        except ImportError as exc:
            raise BackendUnavailableError(
                "simplejpeg is not installed: pip install simplejpeg"
            ) from exc
        self._encode = simplejpeg.encode_jpeg
        self.quality = quality
        self._next_pts = 0

    def encode(self, frame: Frame) -> list[EncodedFrame]:
        data = self._encode(
            np.ascontiguousarray(frame), quality=self.quality, colorspace="RGB", fastdct=True
        )
        self._next_pts += 1
        return [EncodedFrame(bytes(data), self._next_pts - 1, True)]

    def flush(self) -> list[EncodedFrame]:
        return []


def decode_h264(packets: Iterable[bytes]) -> list[Frame]:
    """Decodes an Annex B stream (the packets in order) to RGB frames; for tests and tools."""
    import av

    codec = av.CodecContext.create("h264", "r")
    frames: list[Frame] = []
    chunks: list[bytes | None] = [*packets, None]  # None: the parser hands over its last unit
    for data in chunks:
        for packet in codec.parse(data):
            frames.extend(_rgb(f) for f in codec.decode(packet))
    frames.extend(_rgb(f) for f in codec.decode(None))
    return frames


def _rgb(frame: object) -> Frame:
    import av

    assert isinstance(frame, av.VideoFrame)
    return np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)


def decode_jpeg(data: bytes) -> Frame:
    import simplejpeg

    frame: Frame = simplejpeg.decode_jpeg(data, colorspace="RGB")
    return frame
