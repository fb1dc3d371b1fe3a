"""Thin-plate-spline warps of one rectangle of an image, evaluated on a coarse grid.

A warp moves control points (landmarks) from where they are in the photo to where this frame
wants them, and leaves the rectangle's border where it is. For `cv2.remap` we need the inverse,
the photo position of each output pixel, so the spline is fitted from the wanted positions back
to the photo positions, evaluated every `step` pixels and enlarged bilinearly to every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dandelion.avatar.base import Frame

Points = npt.NDArray[np.float32]
_REGULARIZATION = 1e-3


@dataclass(frozen=True, slots=True)
class Region:
    """A rectangle x0 <= x < x1, y0 <= y < y1 of the working image."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def around(cls, points: Points, pad_x: float, pad_y: float, width: int, height: int) -> Region:
        low = points.min(axis=0)
        high = points.max(axis=0)
        return cls(
            max(0, int(low[0] - pad_x)),
            max(0, int(low[1] - pad_y)),
            min(width, int(np.ceil(high[0] + pad_x))),
            min(height, int(np.ceil(high[1] + pad_y))),
        )

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def border(self, spacing: float) -> Points:
        """Points along the rectangle's edge about `spacing` apart: they stay put."""
        nx = max(2, round(self.width / spacing) + 1)
        ny = max(2, round(self.height / spacing) + 1)
        xs = np.linspace(self.x0, self.x1 - 1, nx)
        ys = np.linspace(self.y0, self.y1 - 1, ny)
        top = np.stack([xs, np.full(nx, self.y0)], axis=1)
        bottom = np.stack([xs, np.full(nx, self.y1 - 1)], axis=1)
        left = np.stack([np.full(ny - 2, self.x0), ys[1:-1]], axis=1)
        right = np.stack([np.full(ny - 2, self.x1 - 1), ys[1:-1]], axis=1)
        return np.concatenate([top, bottom, left, right]).astype(np.float32)


def _kernel(squared: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The thin-plate radial basis r^2 log r, written on r^2 (and 0 at r = 0)."""
    result: npt.NDArray[np.float64] = 0.5 * squared * np.log(np.maximum(squared, 1e-20))
    return result


def _squared_distances(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    result: npt.NDArray[np.float64] = np.maximum(sq, 0.0)
    return result


class GridWarp:
    """Warps one region; the grid and the fade towards the region's edge are computed once."""

    def __init__(
        self, region: Region, step: int = 8, fade: float = 0.18, anchors_per_side: int = 7
    ) -> None:
        self.region = region
        self.step = step
        self._anchors = region.border(max(region.width, region.height) / anchors_per_side)
        # Grid nodes sit where cv2.resize (pixel-centre aligned) puts its source samples when
        # enlarging by `step`: node s at pixel s * step + (step - 1) / 2.
        nx = -(-region.width // step)
        ny = -(-region.height // step)
        offset = (step - 1) / 2
        gx = region.x0 + offset + np.arange(nx) * step
        gy = region.y0 + offset + np.arange(ny) * step
        grid_x, grid_y = np.meshgrid(gx, gy)
        self._shape = (ny, nx)
        self._grid = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
        self._scale = float(max(region.width, region.height))
        # Displacement fades to zero at the edge, so nothing outside the region moves.
        u = (grid_x - region.x0) / max(region.width - 1, 1)
        v = (grid_y - region.y0) / max(region.height - 1, 1)
        self._fade = (_ramp(u, fade) * _ramp(v, fade)).astype(np.float32)[..., None]
        xs = np.arange(region.x0, region.x1, dtype=np.float32)
        ys = np.arange(region.y0, region.y1, dtype=np.float32)
        self._pixels_x, self._pixels_y = np.meshgrid(xs, ys)

    def maps(self, photo: Points, wanted: Points) -> tuple[Points, Points]:
        """Per-pixel source coordinates (map_x, map_y) for the region, for cv2.remap."""
        import cv2

        anchors = self._anchors
        source = np.concatenate([photo, anchors]).astype(np.float64) / self._scale
        target = np.concatenate([wanted, anchors]).astype(np.float64) / self._scale
        n = len(target)
        system = np.zeros((n + 3, n + 3))
        system[:n, :n] = _kernel(_squared_distances(target, target))
        system[:n, :n] += _REGULARIZATION * np.eye(n)
        system[:n, n] = 1.0
        system[:n, n + 1 :] = target
        system[n, :n] = 1.0
        system[n + 1 :, :n] = target.T
        rhs = np.zeros((n + 3, 2))
        rhs[:n] = source - target  # fit the displacement: exactly zero where nothing moves
        coefficients = np.linalg.solve(system, rhs)
        grid = self._grid / self._scale
        basis = _kernel(_squared_distances(grid, target))
        shift = basis @ coefficients[:n] + coefficients[n] + grid @ coefficients[n + 1 :]
        shift = (shift * self._scale).reshape(*self._shape, 2).astype(np.float32) * self._fade
        size = (self._shape[1] * self.step, self._shape[0] * self.step)
        fine = cv2.resize(shift, size, interpolation=cv2.INTER_LINEAR)
        h, w = self.region.height, self.region.width
        return self._pixels_x + fine[:h, :w, 0], self._pixels_y + fine[:h, :w, 1]

    def apply(self, base: Frame, out: Frame, photo: Points, wanted: Points) -> None:
        """Writes the warped region of `base` into the same region of `out`."""
        import cv2

        map_x, map_y = self.maps(photo, wanted)
        r = self.region
        out[r.y0 : r.y1, r.x0 : r.x1] = cv2.remap(
            base, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )


def _ramp(x: npt.NDArray[np.float64], width: float) -> npt.NDArray[np.float64]:
    """0 at both edges of [0, 1], 1 in the middle, smooth in between."""
    edge = np.clip(np.minimum(x, 1.0 - x) / width, 0.0, 1.0)
    result: npt.NDArray[np.float64] = edge * edge * (3.0 - 2.0 * edge)
    return result
