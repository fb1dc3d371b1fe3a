"""The face between replies: real idle frames from an in-process avatar, paced, and held back
whenever a reply is being heard."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from dandelion import idle_face
from dandelion.actors.avatar import AvatarActor
from dandelion.idle_face import IdleFace
from dandelion.protocol import IDLE_TURN_ID, MediaFrame, MediaKind
from dandelion.stages import VideoFrame

IDLE_FPS = 20.0


class AvatarStages:
    """The one `Stages` call an idle face makes, on a real AvatarActor in this process."""

    def __init__(self, actor: AvatarActor, failures: int = 0) -> None:
        self._actor = actor
        self.failures = failures  # renders that fail first (a replica restarting)

    async def idle(self, start_s: float, count: int, codec: str) -> list[VideoFrame]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("avatar replica restarting")
        frames = await self._actor.idle(start_s, count, codec)
        return [VideoFrame(f["pts_us"], f["data"], f.get("seconds", 0.0)) for f in frames]


@pytest.fixture()
def actor() -> AvatarActor:
    # One per test: its lock belongs to the event loop of the test that uses it.
    return AvatarActor({"size": 128, "idle_fps": IDLE_FPS})


async def _until(condition: Any, timeout_s: float = 60.0) -> None:
    """Wait for `condition()` (frames take longer to render on a busy machine: no fixed sleeps)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _run(face: IdleFace, scenario: Any) -> None:
    async def main() -> None:
        task = asyncio.create_task(face.run())
        try:
            await scenario()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_idle_frames_are_paced_on_the_face_clock_and_move(actor: AvatarActor) -> None:
    sent: list[bytes] = []

    async def send(message: MediaFrame) -> bool:
        sent.append(message)
        return True

    face = IdleFace(AvatarStages(actor), send, "jpeg", IDLE_FPS, busy=lambda: False)
    _run(face, lambda: _until(lambda: len(sent) >= 25))
    frames = [m for m in sent]
    assert len(frames) >= 10
    assert all(f.kind == MediaKind.VIDEO and f.turn_id == IDLE_TURN_ID for f in frames)
    assert [f.seq for f in frames] == list(range(len(frames)))
    steps = {b.pts_us - a.pts_us for a, b in itertools.pairwise(frames)}
    assert steps == {round(1e6 / IDLE_FPS)}  # batches join on one frame grid
    assert len({f.payload for f in frames}) > 1  # breathing and sway: not one still


def test_no_idle_frame_while_a_reply_is_heard(actor: AvatarActor) -> None:
    sent: list[tuple[bool, bytes]] = []
    speaking = False

    async def send(message: MediaFrame) -> bool:
        sent.append((speaking, message))
        return True

    before = 0

    async def reply_in_the_middle() -> None:
        nonlocal speaking, before
        await _until(lambda: len(sent) >= 3)
        before = len(sent)
        speaking = True
        await asyncio.sleep(0.6)
        speaking = False
        await _until(lambda: len(sent) >= before + 3)

    face = IdleFace(AvatarStages(actor), send, "jpeg", IDLE_FPS, busy=lambda: speaking)
    _run(face, reply_in_the_middle)
    assert before > 0 and len(sent) > before  # the face moved before and after the reply
    assert not [m for during_reply, m in sent if during_reply]
    seqs = [m.seq for _, m in sent]
    assert seqs == list(range(len(seqs)))  # numbered on across the pause


def test_a_dropped_frame_is_not_counted_and_a_failing_render_is_retried(
    actor: AvatarActor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idle_face, "_RETRY_S", 0.05)
    sent: list[bytes] = []

    async def send(message: MediaFrame) -> bool:
        if len(sent) == 2 and not getattr(send, "dropped", False):
            send.dropped = True  # type: ignore[attr-defined]  # a reply took the floor once
            return False
        sent.append(message)
        return True

    face = IdleFace(AvatarStages(actor, failures=2), send, "h264", IDLE_FPS, busy=lambda: False)
    _run(face, lambda: _until(lambda: len(sent) >= 5))  # it came back after the failures
    assert [m.seq for m in sent] == list(range(len(sent)))
    assert face.frames_sent == len(sent)


class WindingDownStages:
    """One batch at once; every later render waits, and takes a moment to wind down when
    cancelled (as a remote call does)."""

    def __init__(self) -> None:
        self.winding_down = asyncio.Event()

    async def idle(self, start_s: float, count: int, codec: str) -> list[VideoFrame]:
        if not hasattr(self, "rendered"):
            self.rendered = True
            return [VideoFrame(int(start_s * 1e6), b"jpeg")]
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.winding_down.set()
            await asyncio.sleep(0.2)
            raise
        return []


def test_a_face_cancelled_while_a_render_winds_down_stops() -> None:
    """A reply takes the floor (the frame is not sent), the next render is being cancelled, and
    the session closes meanwhile: the face stops instead of starting over."""

    async def main() -> bool:
        stages = WindingDownStages()

        async def reply_took_the_floor(message: MediaFrame) -> bool:
            return False

        face = IdleFace(stages, reply_took_the_floor, "jpeg", IDLE_FPS, busy=lambda: False)  # type: ignore[arg-type]
        task = asyncio.create_task(face.run())
        await asyncio.wait_for(stages.winding_down.wait(), 30)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return task in done

    assert asyncio.run(main()), "the face went on after it was cancelled"


def test_a_codec_change_keeps_the_face_clock_and_the_numbering(actor: AvatarActor) -> None:
    async def send(message: MediaFrame) -> bool:
        return True

    first = IdleFace(AvatarStages(actor), send, "jpeg", IDLE_FPS, busy=lambda: False)
    _run(first, lambda: _until(lambda: first.frames_sent >= 3))
    second = IdleFace(AvatarStages(actor), send, "h264", IDLE_FPS, busy=lambda: False)
    second.continue_clock(first)
    assert abs(second.now_s() - first.now_s()) < 0.05 and second.now_s() > 0.1
    assert second._seq == first._seq > 0
