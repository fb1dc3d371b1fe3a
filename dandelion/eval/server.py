"""A `dandelion serve` of its own, on a free loopback port, for a bench run without `--url`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from dandelion.errors import DandelionError
from dandelion.protocol import SESSION_PATH

START_TIMEOUT_S = 300.0
"""Ray, then every model: ~15 s warm; the first start after an install is much slower."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerStartError(DandelionError):
    """The server exited or did not answer its health check in time; carries its log's tail."""


class LocalServer:
    """`with LocalServer(config) as url:` a server's WebSocket URL, stopped (SIGINT, as Ctrl-C
    does) on exit. Its output goes to a log file named in any start-up error."""

    def __init__(self, config: str | None = None, num_cpus: int | None = None) -> None:
        self.config = config
        self.num_cpus = num_cpus if num_cpus is not None else os.cpu_count() or 2
        self.port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="dandelion-serve-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{SESSION_PATH}"

    def __enter__(self) -> str:
        try:
            return self._start()
        except BaseException:  # Ctrl-C or SIGTERM while it starts: no server is left behind
            self.stop()
            raise

    def _start(self) -> str:
        command = [
            sys.executable, "-m", "dandelion.cli", "serve",
            "--port", str(self.port), "--num-cpus", str(self.num_cpus),
        ]  # fmt: skip
        if self.config:
            command += ["--config", self.config]
        env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
        with self.log_path.open("wb") as log:
            # Its own process group: a Ctrl-C at the terminal reaches the bench, which stops
            # the server in order (SIGINT, then the group killed if it hangs).
            self._process = subprocess.Popen(
                command, env=env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        health = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"the server exited with code {self._process.returncode}")
            try:
                urllib.request.urlopen(health, timeout=2).close()
                return self.url
            except OSError:
                time.sleep(1)
        self._fail(f"no answer from {health} in {START_TIMEOUT_S:.0f} s")
        raise AssertionError("unreachable")

    def _fail(self, why: str) -> None:
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise ServerStartError(f"{why}; log {self.log_path}:\n{tail}")

    def stop(self) -> None:
        """SIGINT, as Ctrl-C in its terminal (Ray shuts its replicas down); then its process
        group is killed: the server itself if it hung for 60 s or a second interruption came,
        and whatever Ray left behind."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(60)
        except subprocess.TimeoutExpired:
            pass
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
