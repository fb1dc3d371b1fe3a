"""The avatar's vocabulary: mouth parameters in, RGB frames out, behind one small Protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]
"""One video frame: height x width x 3, RGB, uint8."""


@dataclass(frozen=True, slots=True)
class MouthParams:
    """Where the mouth is at one instant. All fields are unitless, relative to the face.

    jaw_open: 0 closed lips .. 1 wide open ("ah" shouted).
    lip_width: -1 narrow .. 0 neutral .. 1 spread ("ee", a smile).
    rounding: 0 .. 1 rounded, pushed-forward lips ("oo", "w").
    teeth: 0 .. 1 how much of the teeth shows inside the opening.
    tongue: 0 .. 1 tongue tip raised to the teeth ("th", "l").
    """

    jaw_open: float = 0.0
    lip_width: float = 0.0
    rounding: float = 0.0
    teeth: float = 0.0
    tongue: float = 0.0

    def blend(self, other: MouthParams, weight: float) -> MouthParams:
        """`self` moved `weight` (0..1) of the way towards `other`."""
        keep = 1.0 - weight
        return MouthParams(
            jaw_open=self.jaw_open * keep + other.jaw_open * weight,
            lip_width=self.lip_width * keep + other.lip_width * weight,
            rounding=self.rounding * keep + other.rounding * weight,
            teeth=self.teeth * keep + other.teeth * weight,
            tongue=self.tongue * keep + other.tongue * weight,
        )

    def clamped(self) -> MouthParams:
        """Every field in its range (drivers may overshoot a little)."""

        def unit(x: float) -> float:
            return min(max(x, 0.0), 1.0)

        return MouthParams(
            jaw_open=unit(self.jaw_open),
            lip_width=min(max(self.lip_width, -1.0), 1.0),
            rounding=unit(self.rounding),
            teeth=unit(self.teeth),
            tongue=unit(self.tongue),
        )

    def as_array(self) -> npt.NDArray[np.float64]:
        return np.array(
            [self.jaw_open, self.lip_width, self.rounding, self.teeth, self.tongue], np.float64
        )

    @classmethod
    def from_array(cls, values: npt.ArrayLike) -> MouthParams:
        jaw, width, rounding, teeth, tongue = (float(v) for v in np.asarray(values).ravel())
        return cls(jaw, width, rounding, teeth, tongue)


REST = MouthParams()


@dataclass(frozen=True, slots=True)
class Liveliness:
    """What moves besides the mouth. Switch all off for deterministic, mouth-only frames."""

    blink: bool = True
    sway: bool = True
    idle: bool = True
    seed: int = 0

    @classmethod
    def still(cls) -> Liveliness:
        return cls(blink=False, sway=False, idle=False)


class AvatarRenderer(Protocol):
    size: int
    """Frames are `size` x `size` pixels."""
    fps: float
    """The frame rate the renderer's drivers and animations assume."""

    def render(self, params: MouthParams, t: float) -> Frame:
        """The frame at `t` seconds since the avatar started, with the mouth at `params`."""
        ...
