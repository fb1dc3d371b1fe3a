"""Malformed input gets an error event and the session goes on answering."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


async def _bad_then_good(url: str, question: Path) -> list[dict[str, object]]:
    import websockets
    from dandelion_client.file_mode import (
        Recorder,
        Utterance,
        _read,
        _silence_until,
        _stream,
        _wait_for,
    )

    recorder = Recorder()
    async with websockets.connect(url, max_size=None) as ws:
        reader = asyncio.create_task(_read(ws, recorder))
        await _wait_for(recorder, lambda: recorder.first("session.created"), 30)
        await ws.send("this is not JSON")
        await ws.send(json.dumps({"type": "no.such.event"}))
        await ws.send(b"\x01\x02\x03")  # odd length: not whole PCM16 samples
        await ws.send(b"\x00" * (10 * 1024 * 1024))  # 10 MB
        errors = lambda: [e for e in recorder.events if e["type"] == "error"]  # noqa: E731
        await _wait_for(recorder, lambda: len(errors()) >= 4, 30)
        await _stream(ws, Utterance.load(question).audio, 0, recorder)
        await _silence_until(ws, recorder, lambda: recorder.first("response.done"), 120)
        reader.cancel()
    return recorder.events


def test_malformed_messages_get_errors_and_the_session_answers(
    server_url: str, speech: dict[str, Path]
) -> None:
    events = asyncio.run(_bad_then_good(server_url, speech["capital"]))
    codes = [e["code"] for e in events if e["type"] == "error"]
    assert codes == ["invalid_json", "unknown_event", "invalid_audio_frame", "message_too_large"]
    done = next(e for e in events if e["type"] == "response.done")
    assert done["status"] == "completed"
    assert "paris" in str(done["text"]).lower()
