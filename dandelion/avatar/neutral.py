"""A portrait that shows its teeth (a smile) is first made to close its lips, once.

Closing lips needs a map that tears along the lip seam: above it the photo stays, below it the
lower lip and chin are pulled up by the gap between the lips. A smooth warp cannot tear, so the
mouth would keep a blurred band of teeth; this column-by-column remap can, and runs only at
start-up. The renderer then opens the closed mouth like any other (and reuses the photo's teeth).
"""

from __future__ import annotations

import numpy as np

from dandelion.avatar.base import Frame
from dandelion.avatar.warp import Points

_INNER_UPPER = [60, 61, 62, 63, 64]
_INNER_LOWER = [60, 67, 66, 65, 64]
_LOWER_FACE = [*range(3, 14), 55, 56, 57, 58, 59, 65, 66, 67]


def _axes(landmarks: Points) -> tuple[Points, Points, Points]:
    left, right = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    ex = (right - left) / max(float(np.linalg.norm(right - left)), 1.0)
    ey = np.array([-ex[1], ex[0]], np.float32)
    origin = (landmarks[60] + landmarks[64]) / 2
    return ex.astype(np.float32), ey, origin.astype(np.float32)


def lip_gap(landmarks: Points) -> float:
    """Mean distance between the inner lip contours, in pixels (0 for closed lips)."""
    _, ey, _ = _axes(landmarks)
    return float(np.mean((landmarks[[67, 66, 65]] - landmarks[[61, 62, 63]]) @ ey))


def close_lips(image: Frame, landmarks: Points) -> tuple[Frame, Points]:
    """The same photo with the lips closed, and the landmarks moved accordingly."""
    import cv2

    ex, ey, origin = _axes(landmarks)

    def local(indices: list[int]) -> tuple[Points, Points]:
        rel = landmarks[indices] - origin
        a, b = rel @ ex, rel @ ey
        order = np.argsort(a)
        return a[order].astype(np.float32), b[order].astype(np.float32)

    ua, ub = local(_INNER_UPPER)
    la, lb = local(_INNER_LOWER)
    width = float(np.linalg.norm(landmarks[54] - landmarks[48]))
    lip = max(float((landmarks[57] - landmarks[66]) @ ey), 1.0)  # lower lip thickness
    reach = 0.6 * width  # below the lower lip, the pull fades out over this distance

    def seam(a: Points) -> Points:
        return np.interp(a, ua, ub).astype(np.float32)

    def gap(a: Points) -> Points:
        return np.maximum(np.interp(a, la, lb) - np.interp(a, ua, ub), 0.0).astype(np.float32)

    def pull(a: Points, below: Points) -> Points:
        x = np.clip((below - lip) / reach, 0.0, 1.0)
        fade = 1.0 - x * x * (3.0 - 2.0 * x)
        return np.where(below >= 0.0, gap(a) * fade, 0.0).astype(np.float32)

    height, width_px = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width_px].astype(np.float32)
    a = (xs - origin[0]) * ex[0] + (ys - origin[1]) * ex[1]
    b = (xs - origin[0]) * ey[0] + (ys - origin[1]) * ey[1]
    shift = pull(a, b - seam(a))
    map_x = xs + shift * ey[0]
    map_y = ys + shift * ey[1]
    closed = np.asarray(
        cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
        np.uint8,
    )
    moved = landmarks.copy()
    for index in _LOWER_FACE:
        rel = landmarks[index] - origin
        pa, pb = np.float32(rel @ ex), np.float32(rel @ ey)
        target = pb
        for _ in range(8):  # invert b_out + pull(b_out) = b_photo by fixed-point iteration
            target = pb - pull(np.array([pa]), np.array([target - seam(np.array([pa]))[0]]))[0]
        moved[index] = origin + pa * ex + target * ey
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        moved[lower] = moved[upper]
    return closed, moved.astype(np.float32)
