"""File mode's --video: the replies' avatar frames and audio, as played, in one MP4.

A Recorder is fed what a server sends (JSON events, audio and JPEG video media frames): real
Piper speech, frames rendered by the avatar from the speech envelope. No server runs, except a
tiny fake one for the session.update and late-frame handling of `run_file_session`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dandelion_client.file_mode import Recorder, Utterance, run_file_session
from dandelion_client.mp4 import frame_plan, write_mp4

from dandelion.protocol import MediaFrame, MediaKind, encode_media_frame

av = pytest.importorskip("av")
simplejpeg = pytest.importorskip("simplejpeg")

FPS = 25.0
FRAME_US = round(1_000_000 / FPS)
TEXTS = {
    1: "Hello there. My name is Grace, and I wrote the first compiler. "
    "Paris is the capital of France, a beautiful city on the river Seine.",
    2: "Peter Piper picked a peck of pickled peppers, and then he went home.",
}
CUT_S = 1.5  # turn 2 is interrupted this far into its playback
RED = np.zeros((512, 512, 3), np.uint8)
RED[..., 0] = 255


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Reply:
    pcm: bytes
    frames: list[tuple[int, bytes]]  # (pts_us, JPEG)


@dataclass
class Speech:
    rate: int
    replies: dict[int, Reply]
    mouth: tuple[slice, slice]
    rest: np.ndarray


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    """Two replies as a server would make them: Piper audio, avatar frames, JPEG."""
    pytest.importorskip("piper")
    pytest.importorskip("cv2")
    pytest.importorskip("dlib")
    from dandelion.avatar import REST, EnvelopeDriver, JpegEncoder, LandmarkAvatar, Liveliness
    from dandelion.backends.tts.piper import PiperSynthesizer
    from dandelion.config import TTSSettings

    synthesizer = PiperSynthesizer(TTSSettings(threads=1))
    rate = synthesizer.sample_rate
    avatar = LandmarkAvatar(
        liveliness=Liveliness.still(), cache_dir=tmp_path_factory.mktemp("avatar")
    )
    encoder = JpegEncoder()
    replies: dict[int, Reply] = {}
    for turn, text in TEXTS.items():
        chunks = synthesizer.synthesize(text)
        pcm = b"".join(getattr(c, "pcm", c) for c in chunks)  # bytes, or SpeechChunk
        driver = EnvelopeDriver(FPS)
        frames: list[tuple[int, bytes]] = []
        for offset in range(0, len(pcm), rate * 2 // 5):  # the server's 200 ms audio frames
            for params in driver.push(pcm[offset : offset + rate * 2 // 5], rate):
                k = len(frames)
                image = avatar.render(params, k / FPS)
                frames.append((k * FRAME_US, encoder.encode(image)[0].data))
        replies[turn] = Reply(pcm, frames)
    marks = avatar.portrait.landmarks[48:68] - avatar.portrait.margin
    pad = 0.3 * float(np.ptp(marks[:, 0]))
    x0, y0 = (marks.min(axis=0) - pad).astype(int)
    x1, y1 = (marks.max(axis=0) + pad).astype(int)
    mouth = (slice(max(y0, 0), y1), slice(max(x0, 0), x1))
    return Speech(rate, replies, mouth, avatar.render(REST, 0.0))


def _event(**fields: Any) -> str:
    return json.dumps(fields)


def _media(kind: MediaKind, turn: int, seq: int, pts_us: int, payload: bytes) -> bytes:
    return encode_media_frame(MediaFrame(kind, turn, seq, pts_us, payload))


def _audio_frames(turn: int, pcm: bytes, rate: int) -> list[bytes]:
    step = rate * 2 // 5  # 200 ms of PCM16
    return [
        _media(MediaKind.AUDIO, turn, seq, at // 2 * 1_000_000 // rate, pcm[at : at + step])
        for seq, at in enumerate(range(0, len(pcm), step))
    ]


def _video_frame(turn: int, seq: int, pts_us: int, jpeg: bytes) -> bytes:
    return _media(MediaKind.VIDEO, turn, seq, pts_us, jpeg)


def _record(speech: Speech) -> tuple[Recorder, bytes]:
    """Turn 1 played to the end, its video lagging its audio; turn 2 cut CUT_S into playback.

    Returns the recorder and the red JPEG that stands in for every turn-2 frame that must not
    be seen (due after the cut, or sent after the interrupt).
    """
    clock = FakeClock()
    recorder = Recorder(monotonic=clock)
    rate = speech.rate
    red = simplejpeg.encode_jpeg(RED, colorspace="RGB")
    on = recorder.on_message
    on(
        _event(
            type="session.created",
            output_audio={"encoding": "pcm16", "sample_rate": rate, "channels": 1},
            output_video={"codec": "off", "fps": FPS, "width": 512, "height": 512},
        )
    )
    on(_event(type="session.updated", video="jpeg"))

    one = speech.replies[1]
    on(_event(type="response.started", turn_id=1))
    video = iter(enumerate(one.frames))
    for index, message in enumerate(_audio_frames(1, one.pcm, rate)):
        on(message)
        for seq, (pts, jpeg) in itertools.islice(video, 3):  # rendering: 120 ms per 200 ms
            on(_video_frame(1, seq, pts, jpeg))
        assert index < 100
    on(_event(type="response.audio.done", turn_id=1))
    on(_event(type="response.done", turn_id=1, status="completed", text=TEXTS[1]))
    for seq, (pts, jpeg) in video:  # the frames that come after the reply's audio
        on(_video_frame(1, seq, pts, jpeg))

    clock.t = 200.0
    two = speech.replies[2]
    on(_event(type="response.started", turn_id=2))
    for message in _audio_frames(2, two.pcm, rate):
        on(message)
    shown = [(pts, jpeg if pts < CUT_S * 1e6 - 1_000 else red) for pts, jpeg in two.frames]
    ahead = round(2.0 * FPS)  # frames rendered before the interrupt: up to 2 s, past the cut
    for seq, (pts, jpeg) in enumerate(shown[:ahead]):
        on(_video_frame(2, seq, pts, jpeg))
    clock.t = 200.0 + CUT_S
    on(_event(type="response.interrupted", turn_id=2, heard_text="Peter Piper"))
    for seq, (pts, _) in enumerate(shown[ahead:], start=ahead):  # in flight: never shown
        on(_video_frame(2, seq, pts, red))
    on(_audio_frames(2, two.pcm, rate)[-1])
    on(_event(type="response.done", turn_id=2, status="interrupted", text="Peter Piper"))
    return recorder, red


def test_the_recorder_keeps_the_frames_as_played(speech: Speech) -> None:
    recorder, red = _record(speech)
    assert [pts for pts, _ in recorder.video[1]] == [pts for pts, _ in speech.replies[1].frames]
    cut_us = len(recorder.audio[2]) // 2 * 1_000_000 / speech.rate
    assert abs(cut_us - CUT_S * 1e6) < 1_000
    kept = recorder.video[2]
    assert [pts for pts, _ in kept] == [k * FRAME_US for k in range(len(kept))]
    assert kept[-1][0] < cut_us <= kept[-1][0] + FRAME_US
    assert all(jpeg != red for _, jpeg in kept)
    assert recorder.video_codec == "jpeg"
    kinds = {e["type"] for e in recorder.events}
    assert {"response.audio", "response.video"} <= kinds
    assert recorder.video_complete()


def _decode(path: Path) -> tuple[Any, list[np.ndarray], np.ndarray, int]:
    with av.open(str(path)) as container:
        streams = container.streams
        assert len(streams.video) == 1 and len(streams.audio) == 1, streams
        assert streams.video[0].codec_context.name == "h264"
        assert streams.video[0].codec_context.pix_fmt == "yuv420p"
        durations = {
            s.type: float(s.duration * s.time_base) for s in (streams.video[0], streams.audio[0])
        }
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio_stream = container.streams.audio[0]
        assert audio_stream.codec_context.name == "aac"
        rate = audio_stream.rate
        samples = np.concatenate(
            [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        ).astype(np.float64)
    return durations, frames, samples, rate


def test_the_mp4_has_the_video_over_the_played_audio(speech: Speech, tmp_path: Path) -> None:
    recorder, _ = _record(speech)
    path = tmp_path / "reply.mp4"
    summary = write_mp4(path, recorder)
    durations, frames, samples, rate = _decode(path)

    played_s = len(recorder.played_audio()) / 2 / speech.rate
    assert summary.turns_without_video == []
    assert rate == speech.rate
    assert abs(durations["video"] - durations["audio"]) <= 1 / FPS, durations
    assert abs(durations["video"] - played_s) <= 1 / FPS, (durations, played_s)
    assert len(frames) == summary.frames
    assert abs(len(frames) - played_s * FPS) <= 1, (len(frames), played_s)
    assert frames[0].shape == (512, 512, 3)

    # The audio is the played audio (AAC: close, not equal).
    played = np.frombuffer(recorder.played_audio(), "<i2") / 32768
    n = min(len(played), len(samples))
    assert n >= len(played) - 1024
    assert np.corrcoef(played[:n], samples[:n])[0, 1] > 0.95

    # The mouth moves with the loudness: how far it is from rest, per frame, against the RMS of
    # the audio under that frame.
    mouth = speech.mouth
    rest = speech.rest[mouth].astype(np.int16)
    change = np.array([np.abs(f[mouth].astype(np.int16) - rest).mean() for f in frames])
    edges = [round(k * rate / FPS) for k in range(len(frames) + 1)]
    rms = np.array([np.sqrt(np.mean(samples[a:b] ** 2)) for a, b in itertools.pairwise(edges)])
    r = float(np.corrcoef(change, rms)[0, 1])
    assert r > 0.3, r
    lag = 12  # half a second off: the sync is what correlates, not the mere presence of speech
    assert r > float(np.corrcoef(change[lag:], rms[:-lag])[0, 1]) + 0.15
    assert r > float(np.corrcoef(change[:-lag], rms[lag:])[0, 1]) + 0.15

    # Nothing of turn 2 after its cut: no frame is the red stand-in.
    reddish = [
        k
        for k, f in enumerate(frames)
        if f[..., 0].mean() > 200 and f[..., 1].mean() < 60 and f[..., 2].mean() < 60
    ]
    assert reddish == []


def _tiny_recorder(rate: int = 1000) -> Recorder:
    recorder = Recorder()
    recorder.output_rate = rate
    recorder.audio = {1: bytearray(2 * rate), 2: bytearray(2 * 350 * rate // 1000)}
    recorder.video = {1: [(500_000, b"B"), (200_000, b"A")]}
    return recorder


def test_frame_plan_holds_frames_and_starts_a_turn_on_its_first() -> None:
    plan, missing = frame_plan(_tiny_recorder(), 10.0)
    # Turn 1 (1 s): A (pts 0.2 s) shown from the start, B from 0.5 s; turn 2 (0.35 s, no
    # frames) holds B. 1.35 s at 10 fps: 14 frames.
    a, b = (1, 0), (1, 1)
    assert plan == [a] * 5 + [b] * 5 + [b] * 4
    assert missing == [2]


def test_no_video_is_an_error_not_a_black_film(tmp_path: Path) -> None:
    recorder = _tiny_recorder()
    recorder.video = {}
    with pytest.raises(ValueError, match="no video frames"):
        write_mp4(tmp_path / "x.mp4", recorder, 10.0)


def test_run_file_session_asks_for_video_and_waits_for_late_frames(tmp_path: Path) -> None:
    """Against a fake server: the session.update carries the codec and the instructions, and
    frames that come after the reply is done still make it in."""
    websockets = pytest.importorskip("websockets")
    rate = 16000
    pcm = np.zeros(rate // 5, "<i2").tobytes()  # 200 ms of reply audio
    jpeg = simplejpeg.encode_jpeg(np.zeros((16, 16, 3), np.uint8), colorspace="RGB")
    updates: list[dict[str, Any]] = []

    async def serve(ws: Any) -> None:
        await ws.send(
            _event(
                type="session.created",
                output_audio={"encoding": "pcm16", "sample_rate": rate, "channels": 1},
                output_video={"codec": "off", "fps": FPS, "width": 16, "height": 16},
            )
        )
        replied = False
        async for message in ws:
            if isinstance(message, bytes):
                if not replied:
                    replied = True
                    await ws.send(_event(type="response.started", turn_id=1))
                    await ws.send(_media(MediaKind.AUDIO, 1, 0, 0, pcm))
                    done = _event(type="response.done", turn_id=1, status="completed", text="")
                    await ws.send(done)
                    await asyncio.sleep(0.5)  # rendering runs behind
                    for k in range(5):
                        await ws.send(_video_frame(1, k, k * FRAME_US, jpeg))
                continue
            event = json.loads(message)
            if event["type"] == "session.update":
                updates.append(event["session"])
                await ws.send(_event(type="session.updated", video=event["session"]["video"]))
            elif event["type"] == "conversation.get":
                await ws.send(_event(type="conversation.history", messages=[]))

    wav = tmp_path / "in.wav"
    import soundfile as sf

    sf.write(str(wav), np.zeros(3200, np.float32), 16000)

    async def main() -> Recorder:
        async with websockets.serve(serve, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            return await run_file_session(
                f"ws://127.0.0.1:{port}",
                [Utterance.load(wav)],
                instructions="Be brief.",
                video="jpeg",
                reply_timeout_s=10,
            )

    recorder = asyncio.run(main())
    assert updates == [{"instructions": "Be brief.", "video": "jpeg"}]
    assert recorder.video_codec == "jpeg"
    assert [pts for pts, _ in recorder.video[1]] == [k * FRAME_US for k in range(5)]
    summary = write_mp4(tmp_path / "out.mp4", recorder)
    assert summary.frames == 5
