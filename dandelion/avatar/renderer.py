"""LandmarkAvatar: a talking head from one photo, on one CPU core, well above 25 fps at 512x512.

Per frame: copy the framed photo, warp lips and jaw to the mouth parameters and paint the
opening (`mouth.py`), close the eyelids during a blink, then sway the whole head by a small
affine transform. Nothing is learned per frame; the landmarks were found once at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from dandelion.avatar.base import AvatarRenderer, Frame, Liveliness, MouthParams
from dandelion.avatar.eyes import Eyelid
from dandelion.avatar.motion import BlinkSchedule, head_pose, idle_mouth
from dandelion.avatar.mouth import Mouth
from dandelion.avatar.portrait import Portrait, load_portrait


class LandmarkAvatar:
    """The CPU avatar renderer (see `AvatarRenderer`). Frames are RGB uint8, size x size.

    `portrait`: a loaded Portrait, an image path, an RGB array, or None for the bundled photo.
    Raises NoFaceFoundError at construction if the photo shows no face.
    """

    def __init__(
        self,
        portrait: Portrait | str | Path | npt.NDArray[np.uint8] | None = None,
        *,
        size: int = 512,
        fps: float = 25.0,
        liveliness: Liveliness | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        if not isinstance(portrait, Portrait):
            portrait = load_portrait(portrait, size=size, cache_dir=cache_dir)
        self.portrait = portrait
        self.size = portrait.size
        self.fps = fps
        self.liveliness = liveliness if liveliness is not None else Liveliness()
        marks = portrait.landmarks
        self._mouth = Mouth(portrait.image, marks)
        self._base = self._mouth.base
        self._eyes = [
            Eyelid(self._base, marks, [36, 37, 38, 39, 40, 41], [17, 18, 19, 20, 21]),
            Eyelid(self._base, marks, [42, 43, 44, 45, 46, 47], [22, 23, 24, 25, 26]),
        ]
        self._blinks = BlinkSchedule(self.liveliness.seed)
        chin = marks[8]
        self._pivot = (float(chin[0]), float(chin[1] + 0.15 * portrait.size))

    def render(self, params: MouthParams, t: float) -> Frame:
        import cv2

        live = self.liveliness
        work = self._base.copy()
        if live.idle:
            params = idle_mouth(params, t, live.seed)
        params = params.clamped()
        self._mouth.render(self._base, work, params)
        if live.blink:
            amount = self._blinks.amount(t)
            if amount > 0.01:
                for eye in self._eyes:
                    eye.render(self._base, work, amount)
        m, size = self.portrait.margin, self.size
        if not live.sway:
            return np.ascontiguousarray(work[m : m + size, m : m + size])
        pose = head_pose(t, live.seed, speaking=min(1.0, params.jaw_open), breathing=live.idle)
        matrix = cv2.getRotationMatrix2D(self._pivot, pose.angle, pose.scale)
        matrix[0, 2] += pose.dx * size - m
        matrix[1, 2] += pose.dy * size - m
        frame = cv2.warpAffine(
            work, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return np.asarray(frame, np.uint8)

    def blink_amount(self, t: float) -> float:
        """How shut the eyes are at `t` (0 when blinking is off)."""
        return self._blinks.amount(t) if self.liveliness.blink else 0.0


if TYPE_CHECKING:  # mypy: LandmarkAvatar implements the AvatarRenderer protocol
    _renderer: AvatarRenderer = LandmarkAvatar()
