"""One portrait photo, its face found once: 68 dlib landmarks, framed as a square talking head.

Detection (dlib's HOG detector, ~0.2 s) and the 68-point fit run once per image; the landmarks
are cached in memory and on disk, keyed by a hash of the decoded pixels, so a restart skips
dlib entirely. The weights come from the `face-recognition-models` package (no download).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dandelion.avatar.base import Frame
from dandelion.errors import BackendUnavailableError, ModelNotFoundError, NoFaceFoundError

Points = npt.NDArray[np.float32]
"""N x 2 (x, y) pixel coordinates."""

_CACHE_VERSION = 1
_PREDICTOR = "models/shape_predictor_68_face_landmarks.dat"
_FACE_WIDTH = 0.42
"""Jaw width (landmarks 0-16) as a fraction of the frame."""
_FACE_CENTER_Y = 0.47
"""Where the middle of eyes-to-chin sits, as a fraction of the frame height."""
_MEMORY: dict[str, Points] = {}


def default_portrait_path() -> Path:
    """matplotlib's bundled photo of Grace Hopper (U.S. Navy photograph, public domain)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "No avatar portrait configured and matplotlib (which ships the default one) is not "
            "installed: pip install 'dandelion[avatar]', or pass a portrait path."
        )
    path = Path(spec.submodule_search_locations[0]) / "mpl-data/sample_data/grace_hopper.jpg"
    if not path.is_file():
        raise ModelNotFoundError(f"The default portrait is missing from matplotlib: {path}")
    return path


def default_cache_dir() -> Path:
    """$DANDELION_CACHE_DIR/avatar, else $XDG_CACHE_HOME/dandelion/avatar (~/.cache)."""
    if os.environ.get("DANDELION_CACHE_DIR"):
        return Path(os.environ["DANDELION_CACHE_DIR"]) / "avatar"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dandelion" / "avatar"


@dataclass(frozen=True, slots=True)
class Portrait:
    """The framed photo and its landmarks in frame coordinates.

    `image` is (size + 2 * margin) square: the margin gives head sway room without borders;
    the visible frame is the centre `size` x `size`.
    """

    image: Frame
    landmarks: Points
    size: int
    margin: int
    key: str
    """sha256 of the source pixels: what the landmark cache is keyed by."""


def image_key(image: Frame) -> str:
    digest = hashlib.sha256(f"{image.shape}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def read_image(path: str | Path) -> Frame:
    """An image file as RGB uint8."""
    import cv2

    if not Path(path).is_file():
        raise ModelNotFoundError(f"Avatar portrait not found at {str(path)!r}.")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ModelNotFoundError(f"Avatar portrait {str(path)!r} is not an image OpenCV reads.")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _as_rgb(image: npt.NDArray[np.uint8]) -> Frame:
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"portrait must be an RGB(A) uint8 image, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image[:, :, :3])


def _detect(image: Frame) -> Points:
    """The 68 landmarks of the largest face. Raises NoFaceFoundError."""
    try:
        import dlib
    except ImportError as exc:
        raise BackendUnavailableError(
            "dlib is not installed: pip install 'dandelion[avatar]' (dlib-bin)"
        ) from exc
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The 68-point face landmark model is not installed: "
            "pip install face-recognition-models==0.3.0"
        )
    predictor_path = Path(spec.submodule_search_locations[0]) / _PREDICTOR
    detector = dlib.get_frontal_face_detector()
    faces = []
    for upsample in (1, 2) if max(image.shape[:2]) <= 1024 else (0, 1):
        faces = list(detector(image, upsample))
        if faces:
            break
    if not faces:
        raise NoFaceFoundError(
            "No face found in the avatar portrait: use a frontal photo of one face, "
            "at least ~80 px wide, eyes and mouth visible."
        )
    face = max(faces, key=lambda box: box.width() * box.height())
    shape = dlib.shape_predictor(str(predictor_path))(image, face)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def find_landmarks(image: Frame, cache_dir: Path | None = None) -> Points:
    """68 landmarks in image coordinates; from memory, then disk, then dlib."""
    key = image_key(image)
    if key in _MEMORY:
        return _MEMORY[key].copy()
    directory = cache_dir if cache_dir is not None else default_cache_dir()
    cached = directory / f"{key}.json"
    try:
        data = json.loads(cached.read_text())
        if data.get("version") == _CACHE_VERSION:
            points = np.array(data["landmarks"], np.float32).reshape(68, 2)
            _MEMORY[key] = points
            return points.copy()
    except (OSError, ValueError, KeyError):
        pass
    points = _detect(image)
    _MEMORY[key] = points
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": _CACHE_VERSION, "landmarks": points.tolist()}))
        tmp.replace(cached)
    except OSError:
        pass  # a read-only cache only costs the next start-up a detection
    return points.copy()


def load_portrait(
    source: str | Path | npt.NDArray[np.uint8] | None = None,
    *,
    size: int = 512,
    margin: int | None = None,
    cache_dir: Path | None = None,
) -> Portrait:
    """Find the face in `source` (a path, an RGB array, or None for the default) and frame it.

    Raises NoFaceFoundError if the photo shows no face, ModelNotFoundError if it is unreadable.
    """
    import cv2

    if source is None:
        source = default_portrait_path()
    image = read_image(source) if isinstance(source, str | Path) else _as_rgb(source)
    points = find_landmarks(image, cache_dir)
    pad = margin if margin is not None else size // 16
    jaw_width = float(np.linalg.norm(points[16] - points[0]))
    eyes = points[36:48].mean(axis=0)
    center_x = float(points[[0, 16, 27, 30, 33, 8]][:, 0].mean())
    center_y = float((eyes[1] + points[8][1]) / 2)
    scale = _FACE_WIDTH * size / max(jaw_width, 1.0)
    full = size + 2 * pad
    shift_x = full / 2 - scale * center_x
    shift_y = pad + _FACE_CENTER_Y * size - scale * center_y
    matrix = np.array([[scale, 0.0, shift_x], [0.0, scale, shift_y]], np.float64)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    framed = cv2.warpAffine(
        image, matrix, (full, full), flags=interpolation, borderMode=cv2.BORDER_REPLICATE
    )
    moved = points * scale + np.array([shift_x, shift_y], np.float32)
    return Portrait(
        image=np.ascontiguousarray(framed, np.uint8),
        landmarks=moved.astype(np.float32),
        size=size,
        margin=pad,
        key=image_key(image),
    )
