"""What a session has sent and its client has not taken yet, bounded.

Between a session's `send` and the WebSocket sits one queue per session (and one task that
drains it): a client that stops reading must cost the server a bounded amount of memory. Past
`max_bytes`, video frames go first (the avatar skips frames; audio and events stay whole and in
order); a queue still over it with no video left to drop for `stall_s`, or ever over twice it,
means the client is not reading, and the gateway closes the socket. Pure: the time is given.

Behind Ray Serve's HTTP proxy a WebSocket send never waits for the client (the proxy queues
without bound), so this queue alone would never fill. What the kernel still holds for the
client, read from /proc/net/tcp where the proxy runs on the gateway's machine, stands in for
it: `note_transport` adds it to the queue's own bytes.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass

TRANSPORT_BEHIND_BYTES = 1024 * 1024
"""Unsent bytes in the kernel for a client beyond which it is behind: a reading client's are a
round trip's worth (~50 KB at the avatar's 0.5 MB/s and 100 ms); Linux's send buffer holds up
to 4 MiB."""


@dataclass(frozen=True, slots=True)
class Outbound:
    """One encoded wire message."""

    data: bytes | str
    droppable: bool = False
    """A video frame: the first to go when the client falls behind."""

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else len(self.data.encode())


class SendQueue:
    """A FIFO of `Outbound` messages of at most ~`max_bytes` (see the module's docstring)."""

    def __init__(
        self, max_bytes: int, stall_s: float, transport_behind_bytes: int = TRANSPORT_BEHIND_BYTES
    ) -> None:
        self.max_bytes = max_bytes
        self.stall_s = stall_s
        self.transport_behind_bytes = transport_behind_bytes
        self._items: deque[tuple[Outbound, int]] = deque()
        self.bytes = 0
        self.peak_bytes = 0
        self.transport_bytes = 0
        """What the transport last said it still holds for the client (0: unknown or none)."""
        self.dropped = 0
        """Video frames dropped so far."""
        self.sent_bytes = 0
        """Bytes taken out to be sent so far."""
        self._full_since: float | None = None
        self._overflowed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def behind(self) -> bool:
        """The client is not keeping up: video is dropped, not sent."""
        return self.bytes > self.max_bytes or self.transport_bytes >= self.transport_behind_bytes

    def put(self, item: Outbound, now: float) -> bool:
        """Queue `item`; False if it was dropped (a video frame with no room, or anything once
        the queue has overflowed: the socket is being closed)."""
        size = item.size
        if self._overflowed:
            return False
        if item.droppable and self.transport_bytes >= self.transport_behind_bytes:
            self.dropped += 1
            return False
        if self.bytes + size > self.max_bytes:
            if item.droppable:
                self.dropped += 1
                return False
            self._drop_video(self.bytes + size - self.max_bytes)
        if self.bytes + size > 2 * self.max_bytes:
            self._overflowed = True
            return False
        self._items.append((item, size))
        self.bytes += size
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        self._update(now)
        return True

    def pop(self) -> Outbound | None:
        """The oldest message, or None when empty; video frames are skipped (dropped) while
        the client is behind."""
        while self._items:
            item, size = self._items.popleft()
            self.bytes -= size
            if item.droppable and self.behind:
                self.dropped += 1
                continue
            self.sent_bytes += size
            return item
        return None

    def note_transport(self, unsent: int, now: float) -> None:
        """The transport holds `unsent` bytes for the client that it has not delivered (the
        kernel's send queue of its connection; 0 when unknown)."""
        self.transport_bytes = unsent
        self._update(now)

    def stalled(self, now: float) -> bool:
        """The client is not reading: behind with nothing left to drop for `stall_s`, or the
        queue overflowed."""
        if self._overflowed:
            return True
        self._update(now)
        return self._full_since is not None and now - self._full_since >= self.stall_s

    def _update(self, now: float) -> None:
        full = self.bytes > self.max_bytes or self.transport_bytes >= self.transport_behind_bytes
        if not full:
            self._full_since = None
        elif self._full_since is None:
            self._full_since = now

    def _drop_video(self, excess: int) -> None:
        """Drop queued video frames, oldest first, until `excess` bytes are freed (or none is
        left)."""
        kept: deque[tuple[Outbound, int]] = deque()
        for item, size in self._items:
            if excess > 0 and item.droppable:
                excess -= size
                self.bytes -= size
                self.dropped += 1
            else:
                kept.append((item, size))
        self._items = kept


TcpKey = tuple[str, int, str, int]
"""(local address, local port, remote address, remote port) of a TCP connection."""


def parse_tcp_table(text: str) -> dict[TcpKey, int]:
    """The established connections of a /proc/net/tcp or /proc/net/tcp6 listing, each with its
    send queue (bytes written and not yet acknowledged by the peer). IPv4-mapped IPv6 addresses
    are given as IPv4."""
    table: dict[TcpKey, int] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or fields[3] != "01":  # 01: ESTABLISHED
            continue
        try:
            local, local_port = _endpoint(fields[1])
            remote, remote_port = _endpoint(fields[2])
            unsent = int(fields[4].split(":")[0], 16)
        except ValueError:
            continue
        table[(local, local_port, remote, remote_port)] = unsent
    return table


def normal_address(address: str) -> str:
    """An IP address as `parse_tcp_table` gives it (IPv4-mapped IPv6 as IPv4)."""
    ip = ipaddress.ip_address(address.strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _endpoint(field: str) -> tuple[str, int]:
    """ "0100007F:1F90" -> ("127.0.0.1", 8000): each 32-bit word of the address is in host
    (little-endian) order."""
    hex_address, hex_port = field.split(":")
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return str(ipaddress.IPv4Address(words)), int(hex_port, 16)
    return normal_address(str(ipaddress.IPv6Address(words))), int(hex_port, 16)
