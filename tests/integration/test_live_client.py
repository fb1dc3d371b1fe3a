"""The thin client's live mode, for real: PortAudio's microphone and speaker, the avatar window.

No sound card here, so ALSA (under PortAudio, under sounddevice) gets a `file` device: capture
reads a FIFO this test fills with a spoken question in real time, playback writes a FIFO this
test drains in real time (what a speaker does) and keeps. The window opens on a real X server
(Xvfb); screenshots of it are compared while the reply plays and while the face is idle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.conftest import words

pytestmark = pytest.mark.integration

_MIC_RATE = 16_000
_SPEAKER_RATE = 22_050  # the session's output rate (Piper's)
# ALSA's file plugin pads a short read from its input with silence, so the mic FIFO is written
# in whole capture periods: PortAudio reads 640 frames (1280 bytes) at a time here (seen with
# strace for the live client's 20 ms blocks). Three periods per write stay under PIPE_BUF, so
# each lands whole; the samples read then equal the WAV's exactly (checked sample by sample).
_MIC_BLOCK = 3 * 1280
_RUN_S = 30.0

_ASOUNDRC = """
pcm.!default {{
  type asym
  capture.pcm {{
    type plug
    slave {{
      pcm {{ type file slave.pcm "null" file "/dev/null" infile "{mic}" format "raw" }}
      format S16_LE
      rate {mic_rate}
      channels 1
    }}
  }}
  playback.pcm {{
    type plug
    slave {{
      pcm {{ type file slave.pcm "null" file "{speaker}" format "raw" }}
      format S16_LE
      rate {speaker_rate}
      channels 1
    }}
  }}
}}
"""


class SoundRig:
    """A microphone that says `speech` and a speaker that keeps what it plays, via FIFOs."""

    def __init__(self, folder: Path, speech: np.ndarray) -> None:
        self.home = folder
        self.mic = folder / "mic.fifo"
        self.speaker = folder / "speaker.fifo"
        os.mkfifo(self.mic)
        os.mkfifo(self.speaker)
        (folder / ".asoundrc").write_text(
            _ASOUNDRC.format(
                mic=self.mic,
                speaker=self.speaker,
                mic_rate=_MIC_RATE,
                speaker_rate=_SPEAKER_RATE,
            )
        )
        silence = np.zeros(_MIC_RATE, np.float32)
        tail = np.zeros(int(_MIC_RATE * _RUN_S), np.float32)
        self._mic_pcm = (np.concatenate((silence, speech, tail)) * 32767).astype("<i2").tobytes()
        self.played = bytearray()
        self.first_voice_at: float | None = None  # when the speaker began the reply
        self.last_voice_at: float | None = None
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._say, daemon=True),
            threading.Thread(target=self._listen, daemon=True),
        ]

    def __enter__(self) -> SoundRig:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for path in (self.mic, self.speaker):  # unblock an open() still waiting for its peer
            with open(path, "rb+", buffering=0):
                pass

    def _say(self) -> None:
        # PortAudio opens the device once to probe it and again to stream: start over each time.
        while not self._stop.is_set():
            fd = os.open(self.mic, os.O_WRONLY)
            started, sent = time.monotonic(), 0
            try:
                while not self._stop.is_set() and sent < len(self._mic_pcm):
                    os.write(fd, self._mic_pcm[sent : sent + _MIC_BLOCK])
                    sent += _MIC_BLOCK
                    time.sleep(max(0.0, started + sent / (2 * _MIC_RATE) - time.monotonic()))
            except BrokenPipeError:
                pass
            finally:
                os.close(fd)

    def _listen(self) -> None:
        block = _SPEAKER_RATE // 50 * 2  # 20 ms
        while not self._stop.is_set():
            fd = os.open(self.speaker, os.O_RDONLY)
            started, got = time.monotonic(), 0
            while data := os.read(fd, block):
                self.played.extend(data)
                got += len(data)
                if np.abs(np.frombuffer(data[: len(data) // 2 * 2], "<i2")).max(initial=0) > 300:
                    now = time.monotonic()
                    self.first_voice_at = self.first_voice_at or now
                    self.last_voice_at = now
                time.sleep(max(0.0, started + got / (2 * _SPEAKER_RATE) - time.monotonic()))
            os.close(fd)


def _window_region(display: str, box: tuple[float, float, float, float]) -> bytes:
    """Pixels of a region of the avatar window (top-left of the screen: Xvfb has no WM)."""
    from PIL import ImageGrab

    size = 512
    left, top, right, bottom = (round(v * size) for v in box)
    return ImageGrab.grab(bbox=(left, top, right, bottom), xdisplay=display).tobytes()


_MOUTH = (0.3, 0.45, 0.7, 0.75)
_WHOLE = (0.0, 0.0, 1.0, 1.0)


@pytest.fixture()
def display(tmp_path: Path) -> Any:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("Xvfb is not installed: apt-get install xvfb (scripts/test does)")
    number = 90 + os.getpid() % 100
    server = subprocess.Popen(
        [xvfb, f":{number}", "-screen", "0", "800x700x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    socket = Path(f"/tmp/.X11-unix/X{number}")
    deadline = time.monotonic() + 10
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_live_mode_hears_the_mic_plays_the_reply_and_shows_the_avatar(
    server_url: str, speech: dict[str, Path], tmp_path: Path, display: str
) -> None:
    from dandelion_client.audio import load_audio

    from dandelion.backends.asr.faster_whisper import FasterWhisperRecognizer
    from dandelion.config import ASRSettings

    env = {**os.environ, "HOME": str(tmp_path), "DISPLAY": display}
    env.pop("ALSA_CONFIG_PATH", None)
    command = [sys.executable, "-m", "dandelion_client", "--url", server_url]
    command += ["--duration", str(_RUN_S)]
    with SoundRig(tmp_path, load_audio(speech["capital"])) as rig:
        client = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + _RUN_S
            while rig.first_voice_at is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert rig.first_voice_at is not None, "no reply came out of the speaker"
            time.sleep(0.3)
            speaking = [_window_region(display, _MOUTH)]
            time.sleep(0.5)
            speaking.append(_window_region(display, _MOUTH))
            # The reply is over when the speaker has been quiet for a while: the face at rest.
            while rig.last_voice_at is not None and time.monotonic() - rig.last_voice_at < 1.5:
                time.sleep(0.1)
            idle = [_window_region(display, _WHOLE)]
            time.sleep(1.0)
            idle.append(_window_region(display, _WHOLE))
            out, _ = client.communicate(timeout=_RUN_S + 30)
        finally:
            if client.poll() is None:
                client.kill()
    assert client.returncode == 0, out
    lines = out.splitlines()
    # The question as the server transcribed it (printed by the client): its key words, since
    # what the ASR hears varies with timing.
    said = [line.split("you: ", 1)[1] for line in lines if line.lstrip().startswith("you: ")]
    assert any({"capital", "france"} <= set(words(text)) for text in said), out
    reply = next(line for line in lines if "assistant:" in line)
    assert "paris" in reply.lower(), out
    # The speaker really played the reply: the ASR hears it in what came out.
    import soxr

    played = np.frombuffer(bytes(rig.played), "<i2").astype(np.float32) / 32768
    voiced = np.flatnonzero(np.abs(played) > 0.01)
    assert voiced.size, "the speaker played only silence"
    reply_audio = played[max(0, voiced[0] - 2000) : voiced[-1] + 2000]
    heard = (
        FasterWhisperRecognizer(ASRSettings())
        .transcribe(soxr.resample(reply_audio, _SPEAKER_RATE, _MIC_RATE).astype(np.float32))
        .text
    )
    assert "paris" in heard.lower(), heard
    # The window showed the reply's frames and the idle face, and both moved.
    summary = next(line for line in lines if line.startswith("video:"))
    reply_frames, idle_frames = (int(word) for word in summary.split() if word.isdigit())
    assert reply_frames >= 10 and idle_frames >= 5, summary
    assert speaking[0] != speaking[1], "the mouth did not move while the reply played"
    assert idle[0] != idle[1], "the face did not move while idle"
