"""The live client's avatar window, without a screen: decoding, and which frame is due when."""

from __future__ import annotations

import numpy as np
from dandelion_client.video_window import AvatarWindow, FrameDecoder
from PIL import Image

from dandelion.avatar.encode import H264Encoder, JpegEncoder


def _frames(count: int) -> list[np.ndarray]:
    """A smooth picture (a gradient with a bright square) that moves a pixel a frame."""
    ramp = np.linspace(0, 200, 64, dtype=np.float32)
    base = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (64, 1)), np.full((64, 64), 90)])
    base = base.transpose(1, 2, 0).astype(np.uint8)
    base[20:40, 20:40] = 250
    return [np.roll(base, shift, axis=1) for shift in range(count)]


def test_jpeg_and_h264_frames_decode_to_images_of_the_frame_size() -> None:
    for codec, encoder in (("jpeg", JpegEncoder(90)), ("h264", H264Encoder(64, 64, 25.0))):
        decoder = FrameDecoder(codec)
        images = []
        for frame in _frames(5):
            for packet in encoder.encode(frame):
                images += decoder.decode(packet.data)
        for packet in encoder.flush():
            images += decoder.decode(packet.data)
        assert len(images) == 5, codec
        assert all(image.size == (64, 64) for image in images)
        first = np.asarray(images[0], dtype=np.int16)
        assert np.abs(first - _frames(1)[0]).mean() < 40, codec  # the picture, not noise


class _Speaker:
    """Where playback is: µs of each turn heard so far, as the live client's player reports."""

    def __init__(self) -> None:
        self.heard: dict[int, float] = {}

    def position(self, turn: int) -> float | None:
        return self.heard.get(turn)

    def playing(self) -> bool:
        return bool(self.heard)


def _image(value: int) -> Image.Image:
    return Image.new("RGB", (8, 8), (value, value, value))


def test_reply_frames_show_when_the_speaker_reaches_them_and_idle_never_over_them() -> None:
    speaker = _Speaker()
    window = AvatarWindow("test", (8, 8), speaker.position, speaker.playing)
    window.idle_frame(_image(1))
    assert window._due().getpixel((0, 0)) == (1, 1, 1)  # nothing else: the idle face shows
    for k in range(3):
        window.reply_frame(1, k * 40_000, _image(10 + k))
    window.idle_frame(_image(2))
    assert window._due() is None  # the turn has not started playing: hold the picture
    speaker.heard[1] = 45_000
    assert window._due().getpixel((0, 0)) == (11, 11, 11)  # the latest frame due, not the first
    assert window._due() is None  # the idle frame that came meanwhile is never shown
    window.cut(1)  # barge-in: the rest of the turn's frames are dropped
    speaker.heard.clear()
    assert window._due() is None
    window.idle_frame(_image(3))
    assert window._due().getpixel((0, 0)) == (3, 3, 3)
    assert window.reply_frames_shown == 2 and window.idle_frames_shown == 2
