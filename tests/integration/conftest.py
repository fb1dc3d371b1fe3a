"""A real Serve app with the embedded models on loopback, shared by the integration tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dandelion.config import AppSettings
from dandelion.eval.server import free_port as _free_port

SHARED = Path(__file__).resolve().parents[3] / "shared"
JFK = SHARED / "data" / "speech" / "jfk.flac"


@pytest.fixture(scope="session")
def metrics_port() -> int:
    """Where Ray's metrics agent exports every replica's metrics for Prometheus."""
    return _free_port()


@pytest.fixture(scope="session")
def server_url(metrics_port: int) -> Iterator[str]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from dandelion.protocol import SESSION_PATH
    from dandelion.serve.app import APP_NAME, build_app

    port = _free_port()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _metrics_export_port=metrics_port,
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(AppSettings()), name=APP_NAME, route_prefix="/")
    try:
        yield f"ws://127.0.0.1:{port}{SESSION_PATH}"
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Questions spoken by the Piper voice, as 16 kHz WAVs."""
    from dandelion.tools.say import Speaker

    folder = tmp_path_factory.mktemp("speech")
    speaker = Speaker()
    sentences = {
        "capital": "What is the capital of France?",
        "population": "How many people live there?",
        "story": "Tell me a long story about a dragon.",
        "stop": "Stop. What is two plus two?",
    }
    return {key: speaker.say(text, folder / f"{key}.wav") for key, text in sentences.items()}


def run_client(
    url: str, *args: str | Path, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """The thin client's file mode, as a user runs it."""
    command = [sys.executable, "-m", "dandelion_client", "--url", url, *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"client failed:\n{result.stdout}\n{result.stderr}"
    return result


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events file-mode wrote (`--events`), in order."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def events_of(events: list[dict[str, Any]], kind: str, **match: Any) -> list[dict[str, Any]]:
    """The events of one type whose fields equal `match`."""
    return [e for e in events if e["type"] == kind and all(e.get(k) == v for k, v in match.items())]


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing what was said."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()
