"""A real Prometheus scrapes the app's metrics; the dashboard's queries all return data."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import _free_port, run_client

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prometheus(metrics_port: int, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus (scripts/test does)")
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: dandelion\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except OSError:
        return []
    return list(body["data"]["result"]) if body.get("status") == "success" else []


def _wait_for_data(
    base: str, expr: str, timeout_s: float = 120, positive: bool = True
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = _query(base, expr)
        if result and (not positive or any(float(r["value"][1]) > 0 for r in result)):
            return result
        time.sleep(1)
    raise AssertionError(f"no data for {expr} within {timeout_s} s")


def test_prometheus_gets_stage_histograms_and_dashboard_queries_answer(
    server_url: str, prometheus: str, speech: dict[str, Path], tmp_path: Path
) -> None:
    import asyncio

    import websockets

    async def bad_message() -> None:
        async with websockets.connect(server_url) as ws:
            await ws.recv()
            await ws.send("not json")
            await ws.recv()

    asyncio.run(bad_message())
    run_client(
        server_url,
        "--input", speech["capital"], "--input", speech["story"],
        "--interrupt", speech["stop"], "--interrupt-after", "0.5",
        "--video", tmp_path / "reply.mp4",
    )  # fmt: skip
    for name in (
        "voice_to_voice_seconds",
        "end_of_turn_delay_seconds",
        "asr_seconds",
        "llm_ttft_seconds",
        "llm_tokens_per_second",
        "tts_first_audio_seconds",
        "vad_frame_seconds",
        "avatar_frame_seconds",
    ):
        _wait_for_data(prometheus, f"sum(ray_dandelion_{name}_count)")
    time.sleep(3)  # rate() over the dashboard's windows needs two samples with the data
    dashboard = json.loads((ROOT / "cluster" / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            # Data, not necessarily non-zero: no session is open by now, for one.
            assert _wait_for_data(prometheus, target["expr"], 60, positive=False), panel["title"]
