"""The mouth: where lips and jaw go for given MouthParams, and what shows between the lips.

Geometry works in the face's own axes (x along the eyes, y down the face) and in units of the
photo's mouth width, so it holds for any portrait size or slight tilt. Lips and jaw are moved
by a thin-plate-spline warp of the lower face; the opening between the inner lip contours is
then painted: a dark cavity, a tongue, and teeth (the photo's own teeth where it shows them).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dandelion.avatar.base import Frame, MouthParams
from dandelion.avatar.neutral import close_lips, lip_gap
from dandelion.avatar.warp import GridWarp, Points, Region

F32 = npt.NDArray[np.float32]

JAW = list(range(2, 15))
NOSE = [31, 32, 33, 34, 35]
# Lip contours, each from the left corner to the right one.
OUTER_UPPER = [48, 49, 50, 51, 52, 53, 54]
OUTER_LOWER = [48, 59, 58, 57, 56, 55, 54]
INNER_UPPER = [60, 61, 62, 63, 64]
INNER_LOWER = [60, 67, 66, 65, 64]
_JAW_DROP = np.array([0.15, 0.4, 0.7, 0.88, 0.97, 1.0, 0.97, 0.88, 0.7, 0.4, 0.15], np.float32)
_SAMPLES = 3  # spline points per landmark interval

_OPEN_GAP = 0.5  # inner-lip gap at jaw_open = 1, in mouth widths
_CORNER_DROP = 0.4  # the corners go down this share of the lower lip's drop
_TEETH_UPPER = 0.16  # visible upper incisors at teeth = 1, in mouth widths
_TEETH_LOWER = 0.08
_TEETH_RGB = np.array([250.0, 244.0, 228.0], np.float32)
_CAVITY_RGB = np.array([34.0, 11.0, 13.0], np.float32)
_TONGUE_RGB = np.array([168.0, 78.0, 84.0], np.float32)


def spline(points: Points, samples: int = _SAMPLES) -> Points:
    """A Catmull-Rom curve through `points` in order, `samples` points per interval, ends kept."""
    padded = np.concatenate([points[:1], points, points[-1:]]).astype(np.float32)
    t = np.linspace(0.0, 1.0, samples, endpoint=False, dtype=np.float32)[:, None, None]
    p0, p1, p2, p3 = padded[:-3], padded[1:-2], padded[2:-1], padded[3:]
    curve = 0.5 * (
        2 * p1
        + (-p0 + p2) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
    )  # samples x intervals x 2
    dense = curve.transpose(1, 0, 2).reshape(-1, 2)
    return np.concatenate([dense, points[-1:]]).astype(np.float32)


class Mouth:
    """Everything about one portrait's mouth that does not change from frame to frame."""

    def __init__(self, image: Frame, landmarks: Points) -> None:
        import cv2

        self._teeth_strip = self._photo_teeth(image, landmarks)
        if lip_gap(landmarks) > 0.02 * float(np.linalg.norm(landmarks[54] - landmarks[48])):
            image, landmarks = close_lips(image, landmarks)
        self.base = image
        """The photo the mouth is warped from: the portrait, its lips closed if they were not."""
        left_eye, right_eye = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
        ex = (right_eye - left_eye) / max(float(np.linalg.norm(right_eye - left_eye)), 1.0)
        self.ex = ex.astype(np.float32)
        self.ey = np.array([-ex[1], ex[0]], np.float32)
        self.width = w = float(np.linalg.norm(landmarks[54] - landmarks[48]))
        upper, lower = landmarks[[61, 62, 63]], landmarks[[67, 66, 65]]
        self.photo_gap = float(np.mean((lower - upper) @ self.ey))
        # Control points: jaw, four dense lip contours (shared corners once), fixed nose.
        lines = (OUTER_UPPER, OUTER_LOWER, INNER_UPPER, INNER_LOWER)
        contours = [spline(landmarks[line]) for line in lines]
        self._lip_ranges: list[slice] = []
        parts = [landmarks[JAW]]
        start = len(JAW)
        for k, contour in enumerate(contours):
            kept = contour if k % 2 == 0 else contour[1:-1]
            self._lip_ranges.append(slice(start, start + len(kept)))
            parts.append(kept)
            start += len(kept)
        parts.append(landmarks[NOSE])
        self._points = np.concatenate(parts).astype(np.float32)
        # Per lip point: side position u (-1 left corner .. 1 right corner) and opening profile.
        self._u = np.zeros(len(self._points), np.float32)
        for k, contour in enumerate(contours):
            ends = contour[[0, -1]]
            center, half = ends.mean(axis=0), max(float(np.linalg.norm(ends[1] - ends[0])) / 2, 1.0)
            kept = contour if k % 2 == 0 else contour[1:-1]
            self._u[self._lip_ranges[k]] = np.clip((kept - center) @ self.ex / half, -1.0, 1.0)
        self._profile = np.clip(1.0 - self._u**2, 0.0, 1.0) ** 0.7
        # How far the corners sit above the middle of the mouth (a smile), in pixels: rounded
        # lips lose the smile.
        middle = (landmarks[62] + landmarks[66]) / 2
        corners = (landmarks[60] + landmarks[64]) / 2
        self._smile = float(max((middle - corners) @ self.ey, 0.0))
        self._jaw = np.zeros(len(self._points), np.float32)
        self._jaw[1 : 1 + len(_JAW_DROP)] = _JAW_DROP  # landmarks 3..13
        height, width = image.shape[:2]
        chin_room = (landmarks[8] + self.ey * 0.9 * w)[None, :]
        self.region = Region.around(
            np.concatenate([landmarks[[*JAW, 30]], chin_room]), 0.45 * w, 0.0, width, height
        )
        self._warp = GridWarp(self.region, step=8, fade=0.12)
        lips = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(lips, [landmarks[48:60].astype(np.int32)], 255)
        cv2.fillPoly(lips, [landmarks[60:68].astype(np.int32)], 0)
        lip_rgb = np.array(cv2.mean(image, lips)[:3], np.float32)
        self._lip_rgb = lip_rgb if lips.any() else np.array([170.0, 90.0, 90.0], np.float32)
        self._tongue_rgb = 0.45 * self._lip_rgb + 0.55 * _TONGUE_RGB
        face = np.zeros(image.shape[:2], np.uint8)
        cv2.fillConvexPoly(face, landmarks[[1, 15, 8, 27]].astype(np.int32), 255)
        skin = np.array(cv2.mean(image, face)[:3], np.float32)
        brightness = float(np.clip(skin.mean() / 150.0, 0.6, 1.05))
        self._teeth_rgb = (0.75 * _TEETH_RGB + 0.25 * skin) * brightness

    def targets(self, params: MouthParams) -> Points:
        """Where the control points go for `params`."""
        w = self.width
        change = w * _OPEN_GAP * params.jaw_open - self.photo_gap
        drop, lift = 0.85 * change, 0.15 * change
        corner = _CORNER_DROP * drop
        u, profile = self._u, self._profile
        dy = drop * self._jaw
        dx = np.zeros_like(dy)
        spread = w * (0.1 * params.lip_width - 0.13 * params.rounding)
        smile = w * 0.04 * max(params.lip_width, 0.0)
        pucker = w * 0.05 * params.rounding
        pinch = w * 0.08 * params.rounding
        for k, part in enumerate(self._lip_ranges):
            lower = k % 2 == 1
            if lower:
                dy[part] = corner + (drop - corner) * profile[part]
            else:
                dy[part] = corner - (corner + lift) * profile[part]
            dy[part] -= smile * np.abs(u[part]) ** 3
            dy[part] += 0.7 * params.rounding * self._smile * u[part] ** 2
            dx[part] = spread * u[part] - (pinch * u[part] if k >= 2 else 0.0)
            if k < 2:
                dy[part] += (pucker if lower else -pucker) * profile[part]
        moved = self._points + np.outer(dx, self.ex) + np.outer(dy, self.ey)
        return moved.astype(np.float32)

    def render(self, base: Frame, out: Frame, params: MouthParams) -> None:
        """Warps lips and jaw of `base` into `out` and paints the opening."""
        wanted = self.targets(params)
        self._warp.apply(base, out, self._points, wanted)
        upper = wanted[self._lip_ranges[2]]
        lower_inner = wanted[self._lip_ranges[3]]
        lower = np.concatenate([upper[:1], lower_inner, upper[-1:]])
        self._paint_opening(out, upper, lower, params)

    def _local(self, points: Points, origin: F32) -> tuple[F32, F32]:
        """Face-axis coordinates (a along the eyes, b down the face), sorted by a."""
        rel = points - origin
        a, b = (rel @ self.ex).astype(np.float32), (rel @ self.ey).astype(np.float32)
        order = np.argsort(a, kind="stable")
        return a[order], b[order]

    @staticmethod
    def _photo_teeth(image: Frame, landmarks: Points) -> F32 | None:
        """The photo's own teeth (its mouth opening, straightened) if it shows any."""
        width = float(np.linalg.norm(landmarks[54] - landmarks[48]))
        if lip_gap(landmarks) < 0.05 * width:
            return None
        import cv2

        left_eye, right_eye = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
        ex = (right_eye - left_eye) / max(float(np.linalg.norm(right_eye - left_eye)), 1.0)
        ey = np.array([-ex[1], ex[0]], np.float32)
        origin = ((landmarks[60] + landmarks[64]) / 2).astype(np.float32)

        def local(points: Points) -> tuple[F32, F32]:
            rel = points - origin
            a, b = (rel @ ex).astype(np.float32), (rel @ ey).astype(np.float32)
            order = np.argsort(a, kind="stable")
            return a[order], b[order]

        ua, ub = local(spline(landmarks[INNER_UPPER]))
        la, lb = local(spline(landmarks[INNER_LOWER]))
        half = float(max(-ua[0], ua[-1]))
        columns = np.linspace(-0.85 * half, 0.85 * half, 64, dtype=np.float32)
        top = np.interp(columns, ua, ub).astype(np.float32)
        bottom = np.interp(columns, la, lb).astype(np.float32)
        depth = int(max(2.0, float(np.median(bottom - top))))
        rows = np.arange(depth, dtype=np.float32)[:, None]
        along = columns[None, :]
        down = top[None, :] + rows
        xs = (origin[0] + along * ex[0] + down * ey[0]).astype(np.float32)
        ys = (origin[1] + along * ex[1] + down * ey[1]).astype(np.float32)
        strip: F32 = cv2.remap(image, xs, ys, cv2.INTER_LINEAR).astype(np.float32)
        return strip if float(np.median(strip.mean(axis=2))) > 110.0 else None

    def _paint_opening(self, out: Frame, upper: Points, lower: Points, params: MouthParams) -> None:
        """Paints cavity, tongue and teeth between the inner lip contours (face axes a, b)."""
        import cv2

        origin = ((upper[0] + upper[-1]) / 2).astype(np.float32)
        ua, ub = self._local(upper, origin)
        la, lb = self._local(lower, origin)
        if float(np.max(np.interp(ua, la, lb) - ub)) < 0.8:
            return
        both = np.concatenate([upper, lower])
        x0, y0 = (np.floor(both.min(axis=0)) - 2).astype(int)
        x1, y1 = (np.ceil(both.max(axis=0)) + 3).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, out.shape[1]), min(y1, out.shape[0])
        xs = np.arange(x0, x1, dtype=np.float32) - origin[0]
        ys = np.arange(y0, y1, dtype=np.float32) - origin[1]
        rx, ry = np.meshgrid(xs, ys)
        a = rx * self.ex[0] + ry * self.ex[1]
        b = rx * self.ey[0] + ry * self.ey[1]
        top = np.interp(a, ua, ub).astype(np.float32)
        bottom = np.interp(a, la, lb).astype(np.float32)
        half = float(max(-ua[0], ua[-1], 1.0))
        inside = np.clip((b - top) / 1.5 + 0.5, 0, 1) * np.clip((bottom - b) / 1.5 + 0.5, 0, 1)
        inside *= np.clip(half - np.abs(a) + 0.5, 0, 1)
        if not inside.any():
            return
        w = self.width
        u = np.clip(a / half, -1.0, 1.0)
        u2 = u * u
        taper = np.sqrt(np.clip(1.0 - (u / 0.85) ** 2, 0.0, 1.0))
        gap = np.maximum(bottom - top, 0.0)
        depth = b - top
        # Cavity: dark, darkest at the back corners and just under the upper teeth.
        color = np.empty((*a.shape, 3), np.float32)
        color[:] = _CAVITY_RGB
        color *= ((1.0 - 0.5 * u2) * (0.75 + 0.5 * np.clip(depth / np.maximum(gap, 1), 0, 1)))[
            ..., None
        ]
        # Tongue: a low dome, raised towards the teeth by `tongue`.
        upper_h = params.teeth * _TEETH_UPPER * w * taper
        teeth_edge = top + np.minimum(upper_h, 0.62 * gap)
        rest = bottom - 0.33 * gap
        tongue_top = rest + params.tongue * (teeth_edge + 0.05 * gap - rest) + 0.45 * gap * u2
        tongue = np.clip(b - tongue_top + 0.5, 0, 1) * np.clip(1.3 - np.abs(u), 0, 1)
        lit = 0.5 + 0.5 * np.clip(1.0 - (b - tongue_top) / np.maximum(0.35 * gap, 1.0), 0, 1)
        tongue_rgb = self._tongue_rgb * (lit * (1.0 - 0.4 * u2))[..., None]
        color += tongue[..., None] * (tongue_rgb - color)
        # Lower teeth, in shadow, once the opening is big enough to show them.
        lower_show = max(0.0, 2.0 * params.teeth - 1.0) * (1.0 - params.tongue)
        lower_h = lower_show * _TEETH_LOWER * w * taper * np.clip(gap / (0.12 * w), 0, 1)
        lower_teeth = np.clip(b - (bottom - lower_h) + 0.5, 0, 1) * (lower_h > 0.6)
        shade = (0.8 * (1.0 - 0.4 * u2))[..., None]
        lower_rgb = self._teeth(u, b - (bottom - lower_h), lower_h) * shade
        color += lower_teeth[..., None] * (lower_rgb - color)
        # Upper teeth: the photo's where it has them, drawn otherwise.
        band = np.clip(teeth_edge - b + 0.5, 0, 1) * np.clip(depth + 0.5, 0, 1) * (upper_h > 0.6)
        color += band[..., None] * (self._upper_teeth(u, depth, teeth_edge - top) - color)
        # The inner lip: a dark, wet rim along both edges.
        edge = np.maximum(np.minimum(depth, bottom - b), 0.0)
        rim = 0.65 * np.exp(-edge / max(0.018 * w, 0.8))
        color += rim[..., None] * (0.45 * self._lip_rgb - color)
        color = cv2.GaussianBlur(color, (3, 3), 0.6)  # as soft as the photo around it
        patch = out[y0:y1, x0:x1].astype(np.float32)
        patch += inside[..., None] * (color - patch)
        out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)

    def _upper_teeth(self, u: F32, depth: F32, height: F32) -> F32:
        if self._teeth_strip is None:
            return self._teeth(u, depth, height)
        import cv2

        strip = self._teeth_strip
        map_x = ((u / 0.85 + 1) * 0.5 * (strip.shape[1] - 1)).astype(np.float32)
        map_y = np.clip(depth, 0, strip.shape[0] - 1).astype(np.float32)
        photo = cv2.remap(strip, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(photo, np.float32)

    def _teeth(self, u: F32, depth: F32, height: F32) -> F32:
        """Drawn incisors: lit in the middle, turning away towards the corners, thin gaps."""
        half = self.width / 2
        along = np.clip(depth / np.maximum(height, 1.0), 0.0, 1.0)
        light = (1.0 - 0.35 * u * u) * (0.9 + 0.1 * along) * (1.0 - 0.12 * along**6)
        gaps = np.zeros_like(u)
        for position, strength in ((0.0, 0.22), (0.3, 0.14), (0.52, 0.1), (0.7, 0.08)):
            for sign in (-1.0, 1.0) if position else (1.0,):
                gaps += strength * np.exp(-(((u - sign * position) * half) ** 2) / 0.7)
        light *= 1.0 - np.clip(gaps, 0.0, 0.4)
        return (self._teeth_rgb[None, None, :] * light[..., None]).astype(np.float32)
