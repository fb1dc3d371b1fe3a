"""The web page in a real headless Chromium, with a WAV file as its microphone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.conftest import words

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _microphone_wav(question: Path, folder: Path) -> Path:
    """The question, then silence (a person waiting for the answer), at 48 kHz like a mic."""
    import soundfile as sf
    import soxr
    from dandelion_client.audio import load_audio

    speech = soxr.resample(load_audio(question), 16_000, 48_000)
    silence = np.zeros(48_000 * 12, dtype=np.float32)
    path = folder / "mic.wav"
    sf.write(str(path), np.concatenate((silence[:24_000], speech, silence)), 48_000)
    return path


def _mouth_box(page: Any) -> bytes:
    """A screenshot of the lower middle of the avatar canvas, where the mouth is."""
    box = page.locator("#avatar").bounding_box()
    clip = {
        "x": box["x"] + 0.3 * box["width"],
        "y": box["y"] + 0.45 * box["height"],
        "width": 0.4 * box["width"],
        "height": 0.3 * box["height"],
    }
    return bytes(page.screenshot(clip=clip))


def _wait(page: Any, condition: str, timeout_ms: int, console: list[str]) -> None:
    """`page.wait_for_function`, failing with what the page saw (events, console) on time-out."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, timeout=timeout_ms)
    except PlaywrightTimeout:
        seen = page.evaluate(
            "({connected: window.dandelion.connected, transcripts: window.dandelion.transcripts,"
            " events: window.dandelion.events.map(e => e.type + (e.text ? ': ' + e.text : '')"
            " + (e.reason ? ' (' + e.reason + ')' : '')),"
            " audioFrames: window.dandelion.audioFrames, videoFrames: window.dandelion.videoFrames,"
            " playedMs: window.dandelion.playedMs})"
        )
        pytest.fail(f"waited {timeout_ms} ms for {condition}\npage: {seen}\nconsole: {console}")


def test_web_page_talks_with_a_person_in_chromium(
    server_url: str, speech: dict[str, Path], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: apt-get install chromium (scripts/test does)")
    page_url = server_url.replace("ws://", "http://").replace("/v1/session", "/?autostart=1")
    mic = _microphone_wav(speech["capital"], tmp_path)
    args = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}%noloop",
        "--autoplay-policy=no-user-gesture-required",
    ]  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=False, args=args)
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.goto(page_url)
            page.wait_for_function("window.dandelion && window.dandelion.connected", timeout=30_000)
            # What the ASR heard varies with timing: its key words, not an exact phrase.
            heard_question = (
                "window.dandelion.transcripts.some("
                "t => /\\bcapital\\b/i.test(t) && /\\bfrance\\b/i.test(t))"
            )
            _wait(page, heard_question, 90_000, console)
            _wait(page, "window.dandelion.audioFrames > 0", 60_000, console)
            # The avatar's own frames (video from the server), not the page's fallback face.
            _wait(page, "window.dandelion.videoFrames > 5", 60_000, console)
            page.wait_for_timeout(300)
            first = _mouth_box(page)
            page.wait_for_timeout(700)
            second = _mouth_box(page)
            # The README's picture is refreshed on request only: tests leave the tree as it was.
            shot = "docs/web-client.png" if os.environ.get("DANDELION_UPDATE_SCREENSHOT") else ""
            page.screenshot(path=str(ROOT / shot if shot else tmp_path / "web-client.png"))
            # Reply audio really played: buffers reached their end in the page's AudioContext.
            _wait(page, "window.dandelion.playedMs > 500", 60_000, console)
            # The page shows the question as the server transcribed it.
            heard = page.evaluate("window.dandelion.transcripts")
            assert page.locator("li.user").first.text_content() == heard[0], heard
            assert {"capital", "france"} <= set(words(heard[0])), heard
            assert "paris" in page.locator("li.assistant").first.inner_text().lower()
            assert first != second, "the avatar's mouth did not move while the reply played"
            # After the reply the face rests, breathing and blinking: idle frames (turn 0).
            shown = page.evaluate("window.dandelion.idleFrames")
            page.wait_for_function(f"window.dandelion.idleFrames >= {shown + 10}", timeout=30_000)
            canvas = page.locator("#avatar")
            rest = bytes(canvas.screenshot())
            page.wait_for_timeout(1000)
            assert bytes(canvas.screenshot()) != rest, "the idle face did not move"
        finally:
            browser.close()
