"""A live session's conversation, saved to the session store as it changes, off the event loop.

The gateway calls `changed()` when the session sends an event that follows a change (a reply
done or cut, settings updated, the session created); the save runs a moment later, in a
thread, one at a time per session, so a burst of changes is one write. `close()` saves the
last state. A connection whose conversation was resumed elsewhere stops saving (its saves
would undo the newer connection's), and `taken_over()` returns so the gateway can end it: a
connection the client left without closing (a network that went away) would otherwise hold
its place, and talk, until the transport noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from dandelion.protocol import events as ev
from dandelion.session_state import SessionState
from dandelion.session_store import SessionStore

log = logging.getLogger(__name__)

SAVE_AFTER: tuple[type[ev.ServerEvent], ...] = (
    ev.SessionCreated,
    ev.SessionUpdated,
    ev.ResponseDone,
    ev.ResponseInterrupted,
)
"""Events sent after the conversation or its settings changed."""
_SETTLE_S = 0.05  # the session finishes the change it is announcing before the state is read
OWNER_CHECK_S = 2.0
"""How often a live connection asks the store whether its conversation was resumed elsewhere
(one indexed read: a resumed client's old connection ends within about this)."""


class SessionSaver:
    def __init__(
        self,
        store: SessionStore,
        state: Callable[[], SessionState],
        token_digest: str,
        replaces: str | None = None,
    ) -> None:
        self._store = store
        self._state = state
        self._digest = token_digest
        self._replaces = replaces
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._superseded = asyncio.Event()

    @property
    def superseded(self) -> bool:
        return self._superseded.is_set()

    def changed(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._save_soon())
        else:
            self._again = True

    async def _save_soon(self) -> None:
        while True:
            self._again = False
            await asyncio.sleep(_SETTLE_S)
            await self.save()
            if not self._again:
                return

    async def save(self) -> None:
        if self.superseded:
            return
        state = self._state()
        try:
            owner = await asyncio.to_thread(self._store.save, state, self._digest, self._replaces)
        except Exception:  # the conversation goes on; only resuming it is at risk
            log.warning("session %s: not saved", state.session_id, exc_info=True)
            return
        if not owner:
            self._taken_over(state.session_id)

    def take_over(self) -> None:
        """Another connection on this replica resumed the conversation: stop saving, and let
        `taken_over()` return now."""
        if not self.superseded:
            self._taken_over(self._state().session_id)

    def _taken_over(self, session_id: str) -> None:
        self._superseded.set()
        log.info("session %s was resumed elsewhere: this connection stops saving it", session_id)

    async def taken_over(self, every_s: float = OWNER_CHECK_S) -> None:
        """Return once another connection has resumed this conversation (seen by a save, or by
        asking the store every `every_s` seconds). A store that cannot be reached is asked again
        later: only a store's "no" ends a connection."""
        session_id = self._state().session_id
        while not self.superseded:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every_s):  # not wait_for: it can drop a cancel (3.11)
                    await self._superseded.wait()
                return
            try:
                owner = await asyncio.to_thread(
                    self._store.owns, session_id, self._digest, self._replaces
                )
            except Exception:
                log.debug("session %s: store not reachable", session_id, exc_info=True)
                continue
            if not owner:
                self._taken_over(session_id)

    async def close(self) -> None:
        """The last save, after any pending one."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self.save()
