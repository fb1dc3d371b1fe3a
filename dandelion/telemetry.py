"""What a session reports about itself, whatever records it (Ray metrics, nothing, a test)."""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    def session_opened(self) -> None: ...

    def session_closed(self) -> None: ...

    def vad_frame(self, seconds: float) -> None: ...

    def turn_ended(self, end_of_turn_delay_s: float) -> None: ...

    def reply_finished(self, status: str, timings_ms: dict[str, float], tokens: int) -> None:
        """A reply ended (`completed`, `interrupted`, `cancelled`, `failed`, `empty`)."""
        ...

    def interruption(self) -> None: ...

    def avatar_frame(self, seconds: float) -> None:
        """Rendering and encoding one avatar video frame took `seconds`."""
        ...

    def error(self, code: str) -> None: ...


class NoTelemetry:
    def session_opened(self) -> None:
        pass

    def session_closed(self) -> None:
        pass

    def vad_frame(self, seconds: float) -> None:
        pass

    def turn_ended(self, end_of_turn_delay_s: float) -> None:
        pass

    def reply_finished(self, status: str, timings_ms: dict[str, float], tokens: int) -> None:
        pass

    def interruption(self) -> None:
        pass

    def avatar_frame(self, seconds: float) -> None:
        pass

    def error(self, code: str) -> None:
        pass
