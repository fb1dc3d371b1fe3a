"""The renderer on real photos: the mouth moves, nothing else does, a faceless photo is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dandelion.avatar import portrait as portrait_module
from dandelion.avatar.base import Liveliness, MouthParams
from dandelion.avatar.portrait import load_portrait
from dandelion.avatar.renderer import LandmarkAvatar
from dandelion.avatar.visemes import SHAPES, Viseme
from dandelion.errors import ModelNotFoundError, NoFaceFoundError

pytest.importorskip("cv2")
pytest.importorskip("dlib")

OPEN = SHAPES[Viseme.OPEN].mouth
CLOSED = SHAPES[Viseme.CLOSED].mouth
WIDE = SHAPES[Viseme.WIDE].mouth


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("avatar-cache")


@pytest.fixture(scope="module")
def grace(cache: Path) -> LandmarkAvatar:
    """The bundled portrait, everything but the mouth held still."""
    return LandmarkAvatar(liveliness=Liveliness.still(), cache_dir=cache)


def _box(avatar: LandmarkAvatar, indices: list[int], pad: float) -> tuple[slice, slice]:
    """The landmarks' bounding box, grown by `pad` times its width on every side."""
    points = avatar.portrait.landmarks[indices] - avatar.portrait.margin
    width = float(np.ptp(points[:, 0]))
    x0, y0 = (points.min(axis=0) - pad * width).astype(int)
    x1, y1 = (points.max(axis=0) + pad * width).astype(int)
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)


def _lower_face(avatar: LandmarkAvatar) -> tuple[slice, slice]:
    """Nose tip down to a mouth's width below the chin, jaw side to jaw side and a half mouth
    beyond: where an opening jaw may move the skin (the chin slides over the neck)."""
    marks = avatar.portrait.landmarks - avatar.portrait.margin
    mouth = float(np.linalg.norm(marks[54] - marks[48]))
    top = int(marks[33][1])
    bottom = int(marks[8][1] + 1.0 * mouth)
    left = int(marks[2][0] - 0.5 * mouth)
    right = int(marks[14][0] + 0.5 * mouth)
    return slice(max(top, 0), bottom), slice(max(left, 0), right)


def _inside_outside(a: np.ndarray, b: np.ndarray, box: tuple[slice, slice]) -> tuple[float, float]:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
    mask = np.zeros(diff.shape, bool)
    mask[box] = True
    return float(diff[mask].mean()), float(diff[~mask].mean())


def test_open_and_closed_differ_in_the_mouth_only(grace: LandmarkAvatar) -> None:
    opened, closed = grace.render(OPEN, 0.0), grace.render(CLOSED, 0.0)
    assert opened.shape == (512, 512, 3) and opened.dtype == np.uint8
    inside, outside = _inside_outside(opened, closed, _lower_face(grace))
    assert inside > 8.0, inside
    assert outside < 0.05, outside
    eyes = _box(grace, [*range(17, 27), *range(36, 48)], 0.1)  # brows and eyes: untouched
    assert np.array_equal(opened[eyes], closed[eyes])


def _teeth_pixels(frame: np.ndarray) -> int:
    """Bright and nearly grey: teeth, not skin or lips."""
    rgb = frame.astype(np.int16)
    return int(((rgb.mean(axis=2) > 150) & (np.ptp(rgb, axis=2) < 50)).sum())


def test_an_open_mouth_is_dark_inside_and_shows_teeth(grace: LandmarkAvatar) -> None:
    lips = _box(grace, list(range(48, 68)), 0.1)
    closed = grace.render(CLOSED, 0.0)[lips]
    opened = grace.render(OPEN, 0.0)[lips]
    wide = grace.render(WIDE, 0.0)[lips]
    # Measured: 29% of the box is cavity when open, 0.4% when closed; teeth 0 / 168 / 266 px.
    assert (opened.mean(axis=2) < 40).mean() > 0.15 > (closed.mean(axis=2) < 40).mean()
    assert _teeth_pixels(closed) < 20
    assert _teeth_pixels(wide) > 150 and _teeth_pixels(opened) > 80


def test_rest_is_the_photo_and_frames_are_deterministic(grace: LandmarkAvatar) -> None:
    rest = grace.render(MouthParams(), 0.0)
    m, size = grace.portrait.margin, grace.size
    photo = grace.portrait.image[m : m + size, m : m + size]
    assert np.abs(rest.astype(np.int16) - photo).mean() < 0.5
    assert np.array_equal(grace.render(OPEN, 1.0), grace.render(OPEN, 1.0))
    wild = MouthParams(jaw_open=3.0, lip_width=-5.0, rounding=2.0, teeth=-1.0, tongue=9.0)
    assert np.array_equal(grace.render(wild, 0.0), grace.render(wild.clamped(), 0.0))


def test_blinks_close_the_eyes_and_touch_nothing_else(grace: LandmarkAvatar) -> None:
    avatar = LandmarkAvatar(
        grace.portrait, liveliness=Liveliness(blink=True, sway=False, idle=False)
    )
    times = np.arange(0, 12, 0.01)
    amounts = [avatar.blink_amount(float(t)) for t in times]
    shut = float(times[int(np.argmax(amounts))])
    assert max(amounts) == 1.0 and amounts[0] == 0.0
    starts = np.flatnonzero(np.diff(np.array(amounts) > 0).astype(int) == 1)
    assert len(starts) >= 2  # several blinks in 12 s, at irregular intervals
    eyes = _box(avatar, list(range(17, 27)) + list(range(36, 48)), 0.15)
    inside, outside = _inside_outside(avatar.render(CLOSED, shut), avatar.render(CLOSED, 0.0), eyes)
    assert inside > 3.0 and outside < 0.1, (inside, outside)


def test_sway_and_idle_move_the_head_gently(grace: LandmarkAvatar) -> None:
    avatar = LandmarkAvatar(grace.portrait, liveliness=Liveliness(blink=False))
    a, b = avatar.render(MouthParams(), 0.0), avatar.render(MouthParams(), 3.0)
    diff = np.abs(a.astype(np.int16) - b).mean()
    assert 0.5 < diff < 25.0, diff
    successive = np.abs(avatar.render(MouthParams(), 3.04).astype(np.int16) - b).mean()
    assert successive < diff  # continuous motion: neighbouring frames are closer


def test_a_user_portrait_with_teeth_showing(cache: Path) -> None:
    data = pytest.importorskip("skimage.data")
    avatar = LandmarkAvatar(data.astronaut(), liveliness=Liveliness.still(), cache_dir=cache)
    opened, closed = avatar.render(OPEN, 0.0), avatar.render(CLOSED, 0.0)
    inside, outside = _inside_outside(opened, closed, _lower_face(avatar))
    assert inside > 8.0 and outside < 0.05, (inside, outside)
    # Her smile shows teeth; at rest the lips are closed, so the teeth are gone.
    lips = _box(avatar, list(range(60, 68)), 0.0)
    m, size = avatar.portrait.margin, avatar.size
    photo = avatar.portrait.image[m : m + size, m : m + size]
    assert (closed[lips].mean(axis=2) > 200).sum() < (photo[lips].mean(axis=2) > 200).sum() / 3


def test_a_photo_without_a_face_is_refused(cache: Path) -> None:
    gradient = np.tile(np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None], (300, 1, 3))
    with pytest.raises(NoFaceFoundError, match="No face found"):
        LandmarkAvatar(gradient, cache_dir=cache)
    data = pytest.importorskip("skimage.data")
    with pytest.raises(NoFaceFoundError):
        load_portrait(data.coffee(), cache_dir=cache)  # a real photo: a cup of coffee


def test_a_missing_or_unreadable_portrait_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"nope\.jpg"):
        load_portrait(tmp_path / "nope.jpg")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    with pytest.raises(ModelNotFoundError, match=r"junk\.jpg"):
        load_portrait(junk)


def test_landmarks_are_found_once_then_read_from_the_disk_cache(
    grace: LandmarkAvatar, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    portrait_module._MEMORY.clear()
    first = load_portrait(cache_dir=tmp_path)  # detects, then writes the cache
    assert [p.name for p in tmp_path.iterdir()] == [f"{first.key}.json"]
    portrait_module._MEMORY.clear()

    def no_detection(image: np.ndarray) -> np.ndarray:
        raise AssertionError("dlib ran although the landmarks were cached")

    monkeypatch.setattr(portrait_module, "_detect", no_detection)
    again = load_portrait(cache_dir=tmp_path)
    assert np.array_equal(again.landmarks, first.landmarks)
    assert np.allclose(again.landmarks, grace.portrait.landmarks)
    assert np.array_equal(load_portrait(cache_dir=tmp_path).image, first.image)  # from memory
