"""Limits per session and per replica, and the bounded send queue: all on a given clock."""

from __future__ import annotations

import pytest

from dandelion.admission import (
    BYTES_PER_AUDIO_SECOND,
    Overuse,
    SessionGuard,
    SessionLedger,
    SessionLimits,
    TokenBucket,
    Verdict,
)
from dandelion.config import SecuritySettings
from dandelion.send_queue import Outbound, SendQueue, normal_address, parse_tcp_table

FRAME_20MS = 640  # bytes of PCM16 at 16 kHz


def test_token_bucket_spends_and_refills() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1)  # one refilled
    assert not bucket.take(0.1)
    assert bucket.take(10.0) and bucket.take(10.0) and bucket.take(10.0)
    assert not bucket.take(10.0)  # never more than the burst saved up
    assert not bucket.take(10.0, amount=0.5)
    assert not bucket.take(9.0)  # a clock going back refills nothing


def test_overuse_warns_once_a_spell_and_closes_a_long_one() -> None:
    overuse = Overuse(close_after_s=3.0, gap_s=1.0)
    assert overuse.refused(0.0) is Verdict.WARN
    assert overuse.refused(0.5) is Verdict.DROP
    assert overuse.refused(1.4) is Verdict.DROP
    assert overuse.refused(5.0) is Verdict.WARN  # a gap: a new spell
    assert [overuse.refused(5.0 + i * 0.5) for i in range(1, 6)] == [Verdict.DROP] * 5
    assert overuse.refused(8.0) is Verdict.CLOSE
    assert Overuse(close_after_s=None).refused(0) is Verdict.WARN


def _guard(**limits: float) -> SessionGuard:
    return SessionGuard(SessionLimits(**limits), now=0.0)  # type: ignore[arg-type]


def test_a_real_time_client_is_never_limited() -> None:
    guard = _guard()
    # 10 minutes of 20 ms frames plus a control event each second, with a 5 s backlog first
    # (a page sends what it held while its socket opened).
    for _ in range(250):
        assert guard.on_message(0.0, FRAME_20MS).verdict is Verdict.ACCEPT
    for i in range(30_000):
        now = i * 0.02
        assert guard.on_message(now, FRAME_20MS).verdict is Verdict.ACCEPT
        if i % 50 == 0:
            assert guard.on_message(now).verdict is Verdict.ACCEPT


def test_a_message_flood_is_dropped_with_one_warning_then_closed() -> None:
    guard = _guard(max_messages_per_s=100, message_burst=200, rate_limit_close_s=3.0)
    verdicts = [guard.on_message(i * 0.001).verdict for i in range(5_000)]  # 1000/s for 5 s
    assert verdicts[:200] == [Verdict.ACCEPT] * 200
    assert verdicts.count(Verdict.WARN) == 1
    closed = verdicts.index(Verdict.CLOSE)
    assert 3.0 <= closed * 0.001 < 3.5
    assert guard.on_message(4.0).reason.startswith("over 100 messages a second")


def test_a_short_burst_only_warns() -> None:
    guard = _guard(max_messages_per_s=100, message_burst=50)
    verdicts = [guard.on_message(0.0).verdict for _ in range(80)]
    assert verdicts.count(Verdict.WARN) == 1 and Verdict.CLOSE not in verdicts
    later = [guard.on_message(10 + i * 0.02).verdict for i in range(500)]
    assert set(later) == {Verdict.ACCEPT}


def test_audio_faster_than_real_time_is_dropped_but_never_closes() -> None:
    guard = _guard(max_audio_speed=2.0, audio_burst_s=4.0)
    second = BYTES_PER_AUDIO_SECOND
    # 10x real time: 1 s of audio every 0.1 s.
    decisions = [guard.on_message(i * 0.1, second) for i in range(100)]
    verdicts = [decision.verdict for decision in decisions]
    assert verdicts[:4] == [Verdict.ACCEPT] * 4
    assert verdicts.count(Verdict.WARN) == 1
    assert Verdict.CLOSE not in verdicts
    accepted = verdicts.count(Verdict.ACCEPT)
    assert accepted <= 4 + 2 * 10 + 1  # the burst, then 2x real time over the 10 s
    warning = decisions[verdicts.index(Verdict.WARN)]
    assert warning.reason == "audio over 2x real time: audio dropped"


def test_a_session_expires_when_idle_or_too_long() -> None:
    guard = _guard(idle_timeout_s=300, max_session_s=7200)
    assert guard.seconds_left(0) == 300
    assert guard.expiry(299.9) is None
    expiry = guard.expiry(300)
    assert expiry is not None and expiry.reason == "idle"
    for t in range(0, 7200, 100):
        guard.on_message(float(t))
    assert guard.seconds_left(7100) == 100
    expiry = guard.expiry(7200)
    assert expiry is not None and expiry.reason == "max_length"


def test_limits_come_from_the_settings() -> None:
    security = SecuritySettings(max_messages_per_s=10, idle_timeout_s=5)
    limits = SessionLimits.from_settings(security)
    assert (limits.max_messages_per_s, limits.idle_timeout_s) == (10, 5)
    assert limits.max_session_s == security.max_session_s == 7200


# ---------------------------------------------------------------- sessions across replicas


def test_ledger_limits_the_total_and_lets_a_dead_replicas_count_lapse() -> None:
    ledger = SessionLedger(lease_s=30)
    assert ledger.acquire("a", limit=3, now=0)
    assert ledger.acquire("b", limit=3, now=0)
    assert ledger.acquire("a", limit=3, now=1)
    assert not ledger.acquire("b", limit=3, now=2)
    ledger.release("a", now=3)
    assert ledger.acquire("b", limit=3, now=4)
    assert ledger.total(now=5) == 3
    # "a" stops reporting (its replica died); "b" keeps reporting its own count.
    ledger.report("b", 2, now=25)
    assert ledger.total(now=33) == 2
    assert ledger.acquire("c", limit=3, now=34)
    ledger.release("nobody", now=35)
    assert ledger.total(now=35) == 3


# ---------------------------------------------------------------- the send queue


def _video(size: int) -> Outbound:
    return Outbound(b"v" * size, droppable=True)


def _audio(size: int) -> Outbound:
    return Outbound(b"a" * size)


def test_queue_is_fifo_and_counts_bytes() -> None:
    queue = SendQueue(max_bytes=100, stall_s=5)
    assert queue.put(Outbound('{"type":"pong"}'), 0)
    assert queue.put(_audio(10), 0)
    assert Outbound("é").size == 2
    assert queue.bytes == 25 and len(queue) == 2
    first = queue.pop()
    assert first is not None and first.data == '{"type":"pong"}'
    assert queue.pop() == _audio(10)
    assert queue.pop() is None and queue.bytes == 0


def test_video_goes_first_when_the_client_falls_behind() -> None:
    queue = SendQueue(max_bytes=100, stall_s=5)
    for _ in range(4):
        assert queue.put(_video(20), 0)
    assert queue.put(_audio(20), 0)
    assert not queue.put(_video(20), 0)  # no room: the new frame is dropped
    assert queue.put(_audio(50), 0)  # room made by dropping the oldest frames
    assert queue.dropped == 4
    kinds = []
    while (item := queue.pop()) is not None:
        kinds.append((item.droppable, item.size))
    assert kinds == [(True, 20), (False, 20), (False, 50)]
    assert not queue.stalled(100)


def test_a_client_that_stops_reading_is_detected_with_bounded_memory() -> None:
    queue = SendQueue(max_bytes=1_000, stall_s=5)
    now = 0.0
    while not queue.stalled(now):  # 20 ms of audio and a video frame every 20 ms, none read
        queue.put(_audio(100), now)
        queue.put(_video(300), now)
        now += 0.02
    assert now < 0.5  # twice the limit of audio alone: no need to wait
    assert queue.peak_bytes <= 2 * queue.max_bytes
    assert not queue.put(Outbound("late"), now)  # the socket is being closed: dropped


def test_a_client_reading_too_slowly_is_detected_after_the_stall() -> None:
    queue = SendQueue(max_bytes=1_000, stall_s=2)
    now, tick = 0.0, 0
    while not queue.stalled(now):  # 100 bytes made every 20 ms, 95 read on average
        queue.put(_audio(100), now)
        if tick % 20:
            queue.pop()
        tick += 1
        now += 0.02
    over_since = 1_000 / 250  # growing 250 bytes a second
    assert over_since + 2 <= now < over_since + 2.2
    assert queue.peak_bytes <= 2 * queue.max_bytes


def test_overflowing_twice_the_limit_is_not_reading_at_once() -> None:
    queue = SendQueue(max_bytes=100, stall_s=60)
    assert queue.put(_audio(150), 0)
    assert not queue.stalled(0.1)
    assert not queue.put(_audio(60), 0.2)
    assert queue.stalled(0.2)


def test_a_queue_that_drains_in_time_never_stalls() -> None:
    queue = SendQueue(max_bytes=100, stall_s=1)
    now = 0.0
    for _ in range(1_000):
        queue.put(_audio(150), now)  # over the limit for a moment, each time
        now += 0.5
        queue.pop()
        assert not queue.stalled(now)


def test_a_transport_that_holds_too_much_means_behind_then_stalled() -> None:
    # Behind Serve's proxy the queue drains at once; the kernel's send queue tells instead.
    queue = SendQueue(max_bytes=1_000, stall_s=2, transport_behind_bytes=500)
    queue.note_transport(100, now=0)
    assert not queue.behind
    assert queue.put(_video(10), 0)
    queue.note_transport(600, now=1)
    assert queue.behind
    assert not queue.put(_video(10), 1)  # new frames are not even queued
    assert queue.put(_audio(10), 1)
    assert queue.pop() == _audio(10)  # the queued frame was skipped, the audio goes
    assert queue.dropped == 2
    assert not queue.stalled(2.9)
    queue.note_transport(400, now=2.95)  # it read some: the stall starts again
    assert not queue.stalled(3.0)
    queue.note_transport(700, now=3.0)
    assert not queue.stalled(4.9)
    assert queue.stalled(5.0)


def test_tcp_table_from_proc() -> None:
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        "   0: 0100007F:1F40 0100007F:C350 01 003AF5F4:00000000 01:00000014 00000000     0\n"
        "   1: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0\n"
        "   2: garbage\n"
    )
    assert parse_tcp_table(tcp) == {("127.0.0.1", 8000, "127.0.0.1", 50000): 0x3AF5F4}
    tcp6 = (
        "  sl  local_address                         remote_address                        st "
        "tx_queue rx_queue\n"
        "   0: 0000000000000000FFFF00000100007F:1F40 0000000000000000FFFF00000200A8C0:D431 01 "
        "00000400:00000000\n"
        "   1: 00000000000000000000000001000000:1F40 00000000000000000000000001000000:D432 01 "
        "00000010:00000000\n"
    )
    assert parse_tcp_table(tcp6) == {
        ("127.0.0.1", 8000, "192.168.0.2", 54321): 1024,
        ("::1", 8000, "::1", 54322): 16,
    }
    assert normal_address("::ffff:10.0.0.5") == "10.0.0.5"
    assert normal_address("[::1]") == "::1"


@pytest.mark.parametrize("max_bytes", [64 * 1024 - 1])
def test_settings_keep_the_queue_useful(max_bytes: int) -> None:
    with pytest.raises(ValueError):
        SecuritySettings(send_queue_bytes=max_bytes)


# ---------------------------------------------------------------- the gateway's sender


class _Socket:
    """A WebSocket that takes `takes` messages, then stops (its client stopped reading)."""

    def __init__(self, takes: int) -> None:
        self.takes = takes
        self.sent: list[bytes | str] = []

    async def send_bytes(self, data: bytes) -> None:
        await self._send(data)

    async def send_text(self, data: str) -> None:
        await self._send(data)

    async def _send(self, data: bytes | str) -> None:
        import asyncio

        if len(self.sent) >= self.takes:
            await asyncio.Event().wait()
        self.sent.append(data)


def _drain_into(socket: _Socket, items: list[Outbound]) -> tuple[int, str] | None:
    import asyncio
    import time

    from dandelion.serve.gateway import _drain  # imports Ray: only for these two tests

    async def scenario() -> tuple[int, str] | None:
        queue = SendQueue(max_bytes=64 * 1024, stall_s=0.2)
        ready = asyncio.Event()
        sender = asyncio.create_task(_drain(socket, queue, ready))  # type: ignore[arg-type]
        for item in items:
            queue.put(item, time.monotonic())
            ready.set()
            await asyncio.sleep(0)
        await asyncio.wait({sender}, timeout=1.0)
        if not sender.done():
            assert len(queue) == 0  # all sent: nothing to report
            sender.cancel()
            return None
        return sender.result()

    return asyncio.run(scenario())


def test_the_sender_sends_everything_in_order_to_a_reading_client() -> None:
    socket = _Socket(takes=1_000)
    items = [Outbound('{"type":"pong"}'), Outbound(b"audio"), Outbound(b"video", droppable=True)]
    assert _drain_into(socket, items) is None
    assert socket.sent == ['{"type":"pong"}', b"audio", b"video"]


def test_the_sender_closes_a_client_that_stops_reading() -> None:
    # With a transport that pushes back (uvicorn alone does; Ray Serve's proxy does not: see
    # tests/integration/test_security.py), a send that does not finish in `stall_s` is the end.
    socket = _Socket(takes=3)
    close = _drain_into(socket, [Outbound(b"a" * 1_000) for _ in range(100)])
    assert close is not None
    assert close[0] == 1008 and close[1].startswith("client not reading"), close
    assert len(socket.sent) == 3
