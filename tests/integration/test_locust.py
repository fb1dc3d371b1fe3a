"""The locust voice users against a real Serve app: a short, bounded headless run."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as source:
        return list(csv.DictReader(source))


def test_two_voice_users_for_forty_seconds(server_url: str, tmp_path: Path) -> None:
    # Not imported here: locust monkey-patches the process for gevent (and this one runs Ray).
    missing = [name for name in ("locust", "websocket") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"needs dandelion[load] (missing {', '.join(missing)})")
    prefix = tmp_path / "run"
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE),
        "--headless", "-u", "2", "-r", "2", "-t", "40s", "--only-summary",
        "--csv", str(prefix), "--dandelion-url", server_url,
    ]  # fmt: skip
    # 40 s of load, a few seconds to speak the questions with Piper, a few to stop.
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    output = f"{result.stdout}\n{result.stderr}"
    print(output)
    assert result.returncode == 0, output

    stats = {row["Name"]: row for row in _rows(Path(f"{prefix}_stats.csv"))}
    assert int(stats["turn"]["Request Count"]) >= 2, output
    assert int(stats["Aggregated"]["Failure Count"]) == 0, output
    assert not _rows(Path(f"{prefix}_failures.csv")), output
    assert not _rows(Path(f"{prefix}_exceptions.csv")), output
    assert float(stats["voice_to_voice"]["Median Response Time"]) > 0, output
    assert int(stats["first_transcript"]["Request Count"]) >= 2, output
