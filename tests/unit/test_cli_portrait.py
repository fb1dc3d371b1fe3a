"""A portrait with no face stops `dandelion serve` at start-up with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dandelion.cli import main


def test_serve_refuses_a_portrait_without_a_face(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("dlib")
    photo = tmp_path / "sky.jpg"
    gradient = np.linspace(0, 255, 400, dtype=np.uint8)
    cv2.imwrite(str(photo), np.tile(gradient[None, :, None], (300, 1, 3)))
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"avatar: {{portrait_path: {photo}}}\n")
    assert main(["serve", "--config", str(settings)]) == 2
    assert "No face found" in capsys.readouterr().err
