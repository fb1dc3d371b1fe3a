"""The CPU avatar: a talking head from one portrait photo, lips driven by speech. No Ray here.

    avatar = LandmarkAvatar()                      # bundled portrait; NoFaceFoundError if none
    driver = VisemeDriver(avatar.fps)              # or EnvelopeDriver for TTS without timings
    for params in driver.push(alignments, sample_rate):
        frame = avatar.render(params, t)           # 512x512x3 RGB uint8
        packets = encoder.encode(frame)            # H264Encoder or JpegEncoder

Heavy dependencies (OpenCV, dlib, PyAV) load only when a renderer or encoder is built.
"""

from dandelion.avatar.base import REST, AvatarRenderer, Frame, Liveliness, MouthParams
from dandelion.avatar.encode import EncodedFrame, H264Encoder, JpegEncoder
from dandelion.avatar.portrait import Portrait, load_portrait
from dandelion.avatar.renderer import LandmarkAvatar
from dandelion.avatar.visemes import (
    EnvelopeDriver,
    Viseme,
    VisemeDriver,
    envelope_track,
    phoneme_viseme,
    viseme_track,
)

__all__ = [
    "REST",
    "AvatarRenderer",
    "EncodedFrame",
    "EnvelopeDriver",
    "Frame",
    "H264Encoder",
    "JpegEncoder",
    "LandmarkAvatar",
    "Liveliness",
    "MouthParams",
    "Portrait",
    "Viseme",
    "VisemeDriver",
    "envelope_track",
    "load_portrait",
    "phoneme_viseme",
    "viseme_track",
]
