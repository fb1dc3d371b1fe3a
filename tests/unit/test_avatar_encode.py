"""Encoding rendered frames: H.264 packets decode back to the same number of frames, JPEG too."""

from __future__ import annotations

import numpy as np
import pytest

from dandelion.avatar.base import Liveliness, MouthParams
from dandelion.avatar.encode import H264Encoder, JpegEncoder, decode_h264, decode_jpeg
from dandelion.avatar.renderer import LandmarkAvatar

pytest.importorskip("av")
pytest.importorskip("simplejpeg")

FRAMES = 60


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """2.4 s of a talking, blinking, swaying head."""
    avatar = LandmarkAvatar(
        liveliness=Liveliness(seed=3), cache_dir=tmp_path_factory.mktemp("avatar-cache")
    )
    return [
        avatar.render(MouthParams(jaw_open=0.4 + 0.4 * np.sin(k / 2.0), teeth=0.5), k / 25)
        for k in range(FRAMES)
    ]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-9))


def test_h264_round_trip(frames: list[np.ndarray]) -> None:
    encoder = H264Encoder(512, 512, 25.0)
    packets = []
    for frame in frames:
        out = encoder.encode(frame)
        assert len(out) == 1  # zerolatency: every frame leaves at once, in its own packet
        packets += out
    assert encoder.flush() == []
    assert [p.pts for p in packets] == list(range(FRAMES))
    assert [k for k, p in enumerate(packets) if p.keyframe] == [0, 50]
    assert all(p.data.startswith(b"\x00\x00\x00\x01") for p in packets)  # Annex B
    decoded = decode_h264(p.data for p in packets)
    assert len(decoded) == FRAMES
    assert decoded[0].shape == (512, 512, 3)
    assert min(_psnr(a, b) for a, b in zip(frames, decoded, strict=True)) > 30
    kbit_per_s = sum(len(p.data) for p in packets) * 8 / (FRAMES / 25) / 1000
    assert kbit_per_s < 2500, kbit_per_s


def test_a_late_viewer_decodes_from_the_next_keyframe(frames: list[np.ndarray]) -> None:
    encoder = H264Encoder(512, 512, 25.0, keyframe_interval=20)
    packets = [p for frame in frames for p in encoder.encode(frame)]
    start = next(k for k, p in enumerate(packets) if p.keyframe and k > 0)
    assert start == 20
    assert len(decode_h264(p.data for p in packets[start:])) == FRAMES - start


def test_h264_refuses_odd_sizes() -> None:
    with pytest.raises(ValueError, match="even"):
        H264Encoder(511, 512)


def test_jpeg_round_trip(frames: list[np.ndarray]) -> None:
    encoder = JpegEncoder(quality=80)
    encoded = [p for frame in frames[:5] for p in encoder.encode(frame)]
    assert [p.pts for p in encoded] == list(range(5))
    assert all(p.keyframe and p.data[:2] == b"\xff\xd8" for p in encoded)
    for frame, packet in zip(frames, encoded, strict=False):
        assert _psnr(frame, decode_jpeg(packet.data)) > 30
