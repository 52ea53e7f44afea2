"""`tileserver serve` in a child process on a free 127.0.0.1 port, for the load test and tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from tileserver.errors import TileserverError

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, startup_s: float, what: str,
                 output: Callable[[], str]) -> None:
    """Until ``url`` answers; TileserverError if ``process`` exits first or time runs out."""
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TileserverError(f"{what} exited: {output()}")
        try:
            with urlopen(url, timeout=2):
                return
        except (URLError, ConnectionError):
            time.sleep(0.1)
    raise TileserverError(f"{what} did not answer on {url} within {startup_s:.0f} s")


class LocalServer:
    """Start on enter (waits until /healthz answers), stop on exit. ``url`` is the base URL."""

    def __init__(self, root: Path, cache_mb: int = 512, device: str = "cpu", startup_s: float = 60.0,
                 options: tuple[str, ...] = ()):
        """``options``: more `tileserver serve` options (e.g. --omero-prefix /lab/omero)."""
        self.root, self.cache_mb, self.device, self.startup_s = Path(root), cache_mb, device, startup_s
        self.options = options
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "LocalServer":
        command = [sys.executable, "-m", "tileserver.cli", "serve", str(self.root), "--host", HOST,
                   "--port", str(self.port), "--device", self.device, "--cache-mb", str(self.cache_mb), *self.options]
        self.log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server never blocks on it
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            wait_healthy(f"{self.url}/healthz", self.process, self.startup_s, "the server", self.output)
        except TileserverError:
            self.__exit__()
            raise
        return self

    def output(self) -> str:
        """Everything the server printed so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
