"""A throwaway `redis-server` on 127.0.0.1 and a free port, without persistence, for the tests
and the replica load test. ``stop`` and ``start`` again keep the port (an outage and recovery)."""
from __future__ import annotations

import shutil
import subprocess
import time

import redis

from tileserver.errors import TileserverError
from tileserver.loadtest.local_server import HOST, free_port


class LocalRedis:
    def __init__(self, maxmemory_mb: int = 256, policy: str = "allkeys-lru", startup_s: float = 10.0):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise TileserverError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.maxmemory_mb, self.policy, self.startup_s = maxmemory_mb, policy, startup_s
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "LocalRedis":
        command = [self.binary, "--bind", HOST, "--port", str(self.port), "--save", "", "--appendonly", "no",
                   "--maxmemory", f"{self.maxmemory_mb}mb", "--maxmemory-policy", self.policy]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host=HOST, port=self.port, socket_timeout=1)
        deadline = time.monotonic() + self.startup_s
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise TileserverError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=2)

    def stop(self) -> None:
        """Kill it (SIGKILL: an outage, not a shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "LocalRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
