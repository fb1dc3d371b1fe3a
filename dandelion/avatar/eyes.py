"""Blinks: the upper lid, and the skin above it, slide down over the eye, then back."""

from __future__ import annotations

import numpy as np

from dandelion.avatar.base import Frame
from dandelion.avatar.warp import GridWarp, Points, Region

_TRAVEL = 0.85
"""The warp brings the lid this far down; the last slit is painted over (a spline cannot map
two photo points to one frame point)."""
_LASH_RGB = (58, 36, 30)
_LEVELS = 24
"""Blink depths are rounded to 1/24: the warp of each is computed once and kept."""


class Eyelid:
    """Closes one eye. `eye`: its six landmarks (corner, upper, upper, corner, lower, lower)."""

    def __init__(self, image: Frame, landmarks: Points, eye: list[int], brow: list[int]) -> None:
        import cv2

        corner_a, upper_a, upper_b, corner_b, lower_b, lower_a = eye
        self._corners = landmarks[[corner_a, corner_b]].astype(np.float32)
        self._upper = landmarks[[upper_a, upper_b]].astype(np.float32)
        self._lower = landmarks[[lower_a, lower_b]].astype(np.float32)
        brow_points = landmarks[[brow[1], brow[3]]]
        crease = 0.7 * self._upper + 0.3 * brow_points
        self._photo = np.concatenate(
            [self._corners, self._upper, self._lower, crease, landmarks[brow]]
        ).astype(np.float32)
        self.width = float(np.linalg.norm(self._corners[1] - self._corners[0]))
        height, width = image.shape[:2]
        around = np.concatenate([landmarks[eye], landmarks[brow]])
        self.region = Region.around(around, 0.45 * self.width, 0.6 * self.width, width, height)
        self._warp = GridWarp(self.region, step=2, fade=0.15)
        self._maps: dict[float, tuple[Points, Points]] = {}
        # The lid's colour: the skin between the upper lid and its crease.
        skin = 0.45 * self._upper + 0.55 * brow_points
        band = np.concatenate([self._corners[:1], skin, self._corners[1:], self._upper[::-1]])
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [band.astype(np.int32)], 255)
        mean = cv2.mean(image, mask)[:3] if mask.any() else (150.0, 110.0, 100.0)
        self._lid_rgb = tuple(0.93 * float(c) for c in mean)

    def render(self, base: Frame, out: Frame, amount: float) -> None:
        """Writes the eye `amount` (0 open .. 1 shut) closed into `out`."""
        import cv2

        amount = round(amount * _LEVELS) / _LEVELS
        travel = (self._lower - self._upper) * _TRAVEL * amount
        wanted = self._photo.copy()
        wanted[2:4] += travel
        wanted[4:6] -= travel * 0.06
        wanted[6:8] += travel * 0.2
        maps = self._maps.get(amount)
        if maps is None:  # a blink passes through the same few shapes: warp each once
            maps = self._maps[amount] = self._warp.maps(self._photo, wanted)
        r = self.region
        out[r.y0 : r.y1, r.x0 : r.x1] = cv2.remap(
            base, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        if amount < 0.5:
            return
        origin = np.array([r.x0, r.y0], np.float32)
        lid = np.concatenate([self._corners[:1], wanted[2:4], self._corners[1:]])
        slit = np.concatenate([lid, wanted[5:3:-1]])
        patch = out[r.y0 : r.y1, r.x0 : r.x1]
        strength = min(1.0, (amount - 0.5) / 0.4)
        strength = strength * strength * (3.0 - 2.0 * strength)
        mask = np.zeros(patch.shape[:2], np.uint8)
        cv2.fillPoly(mask, [((slit - origin) * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
        cv2.polylines(mask, [((lid - origin) * 16).astype(np.int32)], False, 255, 1,
                      cv2.LINE_AA, 4)  # fmt: skip
        alpha = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32) * (strength / 255.0)
        painted = patch.astype(np.float32)
        painted += alpha[..., None] * (np.array(self._lid_rgb, np.float32) - painted)
        # The lashes: a dark line where the lids meet.
        line = np.zeros(patch.shape[:2], np.uint8)
        closed = 0.5 * (lid[1:3] + wanted[5:3:-1][::-1])
        lashes = np.concatenate([self._corners[:1], closed, self._corners[1:]])
        thickness = max(1, round(self.width * 0.04))
        cv2.polylines(line, [((lashes - origin) * 16).astype(np.int32)], False, 255, thickness,
                      cv2.LINE_AA, 4)  # fmt: skip
        dark = line.astype(np.float32) * (0.6 * strength / 255.0)
        painted += dark[..., None] * (np.array(_LASH_RGB, np.float32) - painted)
        patch[:] = np.clip(painted + 0.5, 0, 255).astype(np.uint8)
