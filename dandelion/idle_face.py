"""The face between replies: it breathes, blinks and sways while the user speaks or nobody does.

Frames are rendered in batches of about a second on the avatar replica (one short remote call
per batch, not a stream held open for the whole session, which the autoscaler would count as a
request in progress forever) and paced out here in real time. The next batch renders while the
current one plays, so the picture never stalls on a render.

On the wire they are video frames of turn 0 (no reply), stamped on the session's face clock:
clients show each on arrival, and never over a reply's own frames (docs/protocol.md, §6).
No Ray here: `Stages` does the rendering, whatever runs it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from dandelion.protocol import IDLE_TURN_ID, MediaFrame, MediaKind
from dandelion.stages import Stages, VideoFrame

log = logging.getLogger(__name__)

_BATCH_S = 1.0  # face time rendered per remote call
_LEAD_S = 0.15  # the first batch after a reply starts this far ahead (its render time)
_BUSY_POLL_S = 0.1  # while a reply is heard, how often to look whether it has ended
_RETRY_S = 1.0  # after a failed render, the wait before trying again


class IdleFace:
    """Streams idle frames through `send` whenever `busy()` (a reply being heard) is false.

    `send` returns False when it dropped the frame (a reply took the floor meanwhile).
    """

    def __init__(
        self,
        stages: Stages,
        send: Callable[[MediaFrame], Awaitable[bool]],
        codec: str,
        fps: float,
        busy: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
        on_frame: Callable[[float], None] | None = None,
    ) -> None:
        self._stages = stages
        self._send = send
        self._codec = codec
        self._fps = fps
        self._busy = busy
        self._clock = clock
        self._on_frame = on_frame
        self._epoch = clock()
        self._seq = 0
        self.frames_sent = 0

    def continue_clock(self, previous: IdleFace) -> None:
        """Carry on from `previous` (a codec change): same face clock, frame numbers go on."""
        self._epoch = previous._epoch
        self._seq = previous._seq

    def now_s(self) -> float:
        """The face clock: seconds since this face started moving. Replies continue it."""
        return self._clock() - self._epoch

    async def run(self) -> None:
        """Until cancelled. A failing render (a restarting avatar replica) is logged and retried:
        the face freezes for a moment, the session goes on."""
        while True:
            try:
                await self._stream()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("idle frames failed; retrying in %.0f s", _RETRY_S, exc_info=True)
                await asyncio.sleep(_RETRY_S)

    async def _stream(self) -> None:
        count = max(1, round(_BATCH_S * self._fps))
        while True:
            while self._busy():
                await asyncio.sleep(_BUSY_POLL_S)
            start = self._on_grid(self.now_s() + _LEAD_S)
            upcoming = asyncio.create_task(self._stages.idle(start, count, self._codec))
            try:
                while True:
                    frames = await upcoming
                    start += count / self._fps
                    upcoming = asyncio.create_task(self._stages.idle(start, count, self._codec))
                    if not await self._play(frames):
                        break  # a reply took the floor: rest until it is over
            finally:
                upcoming.cancel()
                # gather, not a suppressed await: a cancel of this task arriving while the render
                # winds down must still end it (a suppressed one left a closed session's face
                # running, and its teardown waiting, for ever).
                await asyncio.gather(upcoming, return_exceptions=True)

    def _on_grid(self, t: float) -> float:
        """`t` rounded up to the idle frame grid, so batches join without a gap or overlap."""
        step = 1.0 / self._fps
        return -(-t // step) * step

    async def _play(self, frames: list[VideoFrame]) -> bool:
        """Send each frame when due; False as soon as a reply is being heard.

        A late frame still goes (at once): with H.264, later frames of the batch refer to it.
        """
        for frame in frames:
            delay = frame.pts_us / 1e6 - self.now_s()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._busy():
                return False
            media = MediaFrame(MediaKind.VIDEO, IDLE_TURN_ID, self._seq, frame.pts_us, frame.data)
            if not await self._send(media):
                return False
            self._seq += 1
            self.frames_sent += 1
            if self._on_frame is not None and frame.seconds:
                self._on_frame(frame.seconds)
        return True
