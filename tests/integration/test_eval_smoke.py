"""`dandelion eval --suite smoke` end to end against the real server on loopback, as an operator
runs it. It keeps the bench working; it does not judge the scores (docs/evaluation.md does)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dandelion.eval.report import aggregate
from dandelion.eval.scenario import load_suite

pytestmark = pytest.mark.integration


def test_smoke_suite_runs_and_writes_every_result(server_url: str, tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [sys.executable, "-m", "dandelion.cli", "eval", "--suite", "smoke"]
    done = subprocess.run(
        [*command, "--url", server_url, "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    suite, _ = load_suite("smoke")
    names = [s.name for s in suite.scenarios]
    # A progress line per scenario, then the table.
    for name in names:
        assert f"] {name} (" in done.stdout, done.stdout
    assert "| voice-to-voice p50 |" in done.stdout
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["scenarios"]] == names
    assert set(results["metrics"]) == {m.key for m in aggregate([])}
    # The run itself went through: every turn spoken, the connection kept. (A reply that never
    # ends, such as an echo loop, is the server's score, not the bench's failure.)
    for scenario in results["scenarios"]:
        lost = [f for f in scenario["failures"] if "not spoken" in f or "connection" in f]
        assert not lost, done.stdout
    # Measurements were made, whatever their values: latency of answered turns, WER where a
    # reference exists, and the replies transcribed again for symbols read aloud.
    assert results["metrics"]["voice_to_voice_p50"] is not None
    assert results["metrics"]["wer"] is not None
    timelines = [json.loads(line) for line in (out / "timelines.jsonl").read_text().splitlines()]
    assert sorted(t["scenario"] for t in timelines) == sorted(names)
    assert any(t["heard"] for t in timelines)
    markdown = (out / "results.md").read_text()
    assert "| scenario | turns taken |" in markdown
    assert all(f"| {name} |" in markdown for name in names)
