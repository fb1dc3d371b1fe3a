"""Live mode's avatar window: the server's video shown in time with the reply's audio.

Tk (Python's own GUI toolkit) runs in a thread of its own, because Tk objects belong to the
thread that made them; the network loop only hands it encoded frames. JPEG is decoded with
Pillow, H.264 with PyAV. A reply's frame is shown when the speaker reaches its `pts_us` on the
turn's audio clock (what `position` reports); idle frames (turn 0) are shown on arrival, never
over a reply's own frames (docs/protocol.md, §6).
"""

from __future__ import annotations

import gc
import io
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from dandelion.errors import BackendUnavailableError

_TICK_MS = 10  # how often the window looks for a frame that is due

PlayPosition = Callable[[int], float | None]
"""turn id -> µs of that turn's audio heard so far, or None before it starts playing."""


class NoDisplayError(RuntimeError):
    """There is no screen to open the window on (no DISPLAY, or Tk is missing)."""


class FrameDecoder:
    """Encoded frames in, RGB images out: one decoder per session (H.264 keeps state)."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self._h264: Any = None
        if codec == "h264":
            try:
                import av
            except ImportError as exc:
                raise BackendUnavailableError(
                    "H.264 video needs PyAV: pip install av (or ask for JPEG video)"
                ) from exc
            self._h264 = av.CodecContext.create("h264", "r")

    def decode(self, data: bytes) -> list[Any]:
        """PIL images for one frame's bytes (H.264 may give none until a keyframe)."""
        from PIL import Image

        if self._h264 is None:
            return [Image.open(io.BytesIO(data)).convert("RGB")]
        import av

        # Each message is one whole access unit (docs/protocol.md): decoded as it is, without
        # the parser, which would hold every frame back until the next one arrives.
        return [frame.to_image() for frame in self._h264.decode(av.Packet(data))]


class AvatarWindow:
    """A window showing the avatar; feed it from any thread, it draws in its own."""

    def __init__(
        self,
        title: str,
        size: tuple[int, int],
        position: PlayPosition,
        playing: Callable[[], bool],
    ) -> None:
        self._title = title
        self._size = size
        self._position = position
        self._playing = playing
        self._lock = threading.Lock()
        self._reply: deque[tuple[int, int, Any]] = deque()  # (turn, pts_us, image), in order
        self._idle: Any = None  # the newest idle image not yet shown
        self._cut: set[int] = set()
        self._closed = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.reply_frames_shown = 0
        self.idle_frames_shown = 0

    def open(self) -> None:
        """Open the window; raises NoDisplayError if there is no screen."""
        self._thread = threading.Thread(target=self._run, name="avatar-window", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._error is not None:
            raise NoDisplayError(f"cannot open the avatar window: {self._error}") from self._error

    def reply_frame(self, turn: int, pts_us: int, image: Any) -> None:
        with self._lock:
            if turn not in self._cut:
                self._reply.append((turn, pts_us, image))

    def idle_frame(self, image: Any) -> None:
        with self._lock:
            self._idle = image

    def cut(self, turn: int) -> None:
        """The turn was interrupted: its frames still waiting are never shown."""
        with self._lock:
            self._cut.add(turn)
            self._reply = deque(item for item in self._reply if item[0] != turn)

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def closed(self) -> bool:
        """True once the person closed the window (or `close()` was called)."""
        return self._closed.is_set()

    # ------------------------------------------------------------------ the Tk thread

    def _run(self) -> None:
        self._mainloop()
        # Tk objects must die in the thread that made them, not in a later GC elsewhere: the
        # window's closures hold reference cycles, collected here once the main loop is over.
        gc.collect()

    def _mainloop(self) -> None:
        try:
            import tkinter

            from PIL import ImageTk

            root = tkinter.Tk()
        except Exception as exc:  # no DISPLAY, no Tk, no Pillow: said by open()
            self._error = exc
            self._ready.set()
            return
        root.title(self._title)
        # A blank image of the video's size: a Label's own width/height count characters.
        blank = tkinter.PhotoImage(width=self._size[0], height=self._size[1], master=root)
        label = tkinter.Label(root, image=blank, bg="black", borderwidth=0)
        label.pack()
        root.protocol("WM_DELETE_WINDOW", self._closed.set)
        shown: list[Any] = [blank]  # keeps the PhotoImage alive while Tk shows it

        def tick() -> None:
            if self._closed.is_set():
                root.destroy()
                return
            image = self._due()
            if image is not None:
                photo = ImageTk.PhotoImage(image, master=root)
                label.configure(image=photo)
                shown[:] = [photo]
            root.after(_TICK_MS, tick)

        self._ready.set()
        root.after(_TICK_MS, tick)
        root.mainloop()
        shown.clear()

    def _due(self) -> Any:
        """The image to show now, or None to keep the current one."""
        with self._lock:
            image = None
            while self._reply:
                turn, pts_us, candidate = self._reply[0]
                played = self._position(turn)
                if played is None or played < pts_us:
                    break
                self._reply.popleft()
                image = candidate
                self.reply_frames_shown += 1
            if image is not None or self._reply or self._playing():
                self._idle = None  # a reply is heard: the face at rest waits
                return image
            idle, self._idle = self._idle, None
            if idle is not None:
                self.idle_frames_shown += 1
            return idle
