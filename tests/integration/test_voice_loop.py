"""The voice loop end to end: real models, a real Serve app on loopback, the thin client."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from tests.integration.conftest import JFK, events_of, read_events, run_client, words

pytestmark = pytest.mark.integration


def _similarity(a: str, b: str) -> float:
    letters = ["".join(words(text)) for text in (a, b)]
    return difflib.SequenceMatcher(None, *letters).ratio()


def test_jfk_flac_44k_stereo_is_transcribed(server_url: str, tmp_path: Path) -> None:
    events_path = tmp_path / "events.jsonl"
    run_client(server_url, "--input", JFK, "--events", events_path)
    finals = " ".join(e["text"] for e in events_of(read_events(events_path), "transcript.final"))
    assert "ask not what your country can do for you" in " ".join(words(finals))


def test_spoken_reply_matches_its_text(
    server_url: str, speech: dict[str, Path], tmp_path: Path
) -> None:
    from dandelion_client.audio import load_audio

    from dandelion.backends.asr.faster_whisper import FasterWhisperRecognizer
    from dandelion.config import ASRSettings

    events_path, reply_wav = tmp_path / "events.jsonl", tmp_path / "reply.wav"
    run_client(
        server_url, "--input", speech["capital"], "--events", events_path, "--output", reply_wav
    )
    events = read_events(events_path)
    done = events_of(events, "response.done")[0]
    # What the ASR heard varies with timing: its key words, not an exact sentence.
    question = events_of(events, "transcript.final", turn_id=done["turn_id"])[0]["text"]
    assert {"capital", "france"} <= set(words(question)), question
    assert done["status"] == "completed"
    assert "paris" in words(done["text"])
    heard = FasterWhisperRecognizer(ASRSettings()).transcribe(load_audio(reply_wav)).text
    # Compared letter by letter: tiny.en hears Piper's "France is" as "Francis".
    assert _similarity(heard, done["text"]) >= 0.85, (heard, done["text"])
    assert "paris" in words(heard)


def test_first_audio_arrives_while_the_llm_still_writes(
    server_url: str, speech: dict[str, Path], tmp_path: Path
) -> None:
    events_path = tmp_path / "events.jsonl"
    run_client(server_url, "--input", speech["story"], "--events", events_path)
    events = read_events(events_path)
    turn = events_of(events, "response.done")[0]["turn_id"]
    first_audio = events_of(events, "response.audio", turn_id=turn)[0]
    text_done = events_of(events, "response.text.done", turn_id=turn)[0]
    # Same socket, same order as sent: audio before text.done means it was synthesized and
    # sent while the LLM was still generating.
    assert events.index(first_audio) < events.index(text_done)
    assert first_audio["t"] < text_done["t"]


def test_second_question_uses_the_history(
    server_url: str, speech: dict[str, Path], tmp_path: Path
) -> None:
    events_path = tmp_path / "events.jsonl"
    run_client(
        server_url,
        "--input", speech["capital"], "--input", speech["population"],
        "--events", events_path,
    )  # fmt: skip
    events = read_events(events_path)
    done = events_of(events, "response.done")
    assert [d["status"] for d in done] == ["completed", "completed"]
    history = events_of(events, "conversation.history")[0]["items"]
    assert [item["role"] for item in history] == ["user", "assistant", "user", "assistant"]
    # The history keeps what the server transcribed for each turn (which varies with timing).
    first, second = (
        events_of(events, "transcript.final", turn_id=d["turn_id"])[0]["text"] for d in done
    )
    assert history[0]["content"] == first
    assert history[2]["content"] == second
    assert {"capital", "france"} <= set(words(first)), first
    assert {"people", "there"} <= set(words(second)), second
    assert not {"paris", "france"} & set(words(second)), second
    # "there" only resolves to Paris through the first exchange in the prompt.
    assert "paris" in words(done[1]["text"])


def test_barge_in_stops_the_reply_and_keeps_what_was_heard(
    server_url: str, speech: dict[str, Path], tmp_path: Path
) -> None:
    events_path = tmp_path / "events.jsonl"
    run_client(
        server_url,
        "--input", speech["story"], "--interrupt", speech["stop"], "--interrupt-after", "0.5",
        "--events", events_path,
    )  # fmt: skip
    events = read_events(events_path)
    print("\n".join(json.dumps(e) for e in events if e["type"] != "response.audio"))
    interrupted = events_of(events, "response.interrupted")
    assert len(interrupted) == 1
    cut = interrupted[0]
    turn = cut["turn_id"]
    first_done = events_of(events, "response.done", turn_id=turn)[0]
    # A reply the server finished sending before the barge-in (a short one: the model may refuse
    # what the ASR heard as "a long story about it, Dragon") is done as completed and then cut
    # while it plays (protocol.md §9); one still streaming is done as interrupted.
    sent_all = events.index(first_done) < events.index(cut)
    assert first_done["status"] == ("completed" if sent_all else "interrupted")
    # The reply stopped: no audio of that turn after the interruption.
    after = events[events.index(cut) :]
    assert not events_of(after, "response.audio", turn_id=turn)
    # Only what was played is kept: a strict prefix of what was written.
    heard, written = words(cut["heard_text"]), words(first_done["text"])
    assert 0 < len(heard) < len(written)
    assert written[: len(heard)] == heard
    assert 500 <= cut["played_ms"] < 3000
    history = events_of(events, "conversation.history")[0]["items"]
    # The question as the server transcribed it in this run (timing changes what the ASR hears:
    # "about it, Dragon" for "about a dragon" on a busy machine).
    question = events_of(events, "transcript.final", turn_id=turn)
    assert len(question) == 1
    assert {"story", "dragon"} <= set(words(question[0]["text"])), question
    assert history[0] == {"role": "user", "content": question[0]["text"]}
    assert history[1] == {"role": "assistant", "content": cut["heard_text"]}
    # The person's interruption is answered in turn.
    assert {"two", "2"} & set(words(history[2]["content"]))
    assert events_of(events, "response.done")[-1]["status"] == "completed"
