"""docker/nginx.conf run locally: the same load balancer in front of servers on 127.0.0.1.

``local_config`` rewrites the upstream servers and the listen port of the compose file's config
and sends nginx's pid, logs and temporary files to a directory of its own; ``LocalNginx`` runs
it in the foreground, as the replica load test does.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tileserver.errors import TileserverError
from tileserver.loadtest.local_server import HOST, free_port, wait_healthy

COMPOSE_CONFIG = Path(__file__).resolve().parents[2] / "docker" / "nginx.conf"
_UPSTREAM_SERVER = re.compile(r"^(\s*)server\s+\S+:\d+(\s[^;]*)?;\n", re.MULTILINE)
_LISTEN = re.compile(r"^(\s*)listen\s+\d+;", re.MULTILINE)


def local_config(text: str, upstreams: list[str], port: int, work_dir: Path) -> str:
    """``text`` with its upstream servers replaced by ``upstreams`` (host:port), listening on
    127.0.0.1:``port``, with every file nginx writes under ``work_dir``."""
    servers = list(_UPSTREAM_SERVER.finditer(text))
    if not servers or _LISTEN.search(text) is None:
        raise TileserverError("the nginx config has no upstream servers or no listen directive")
    indent, params = servers[0].group(1), servers[0].group(2) or ""
    lines = "".join(f"{indent}server {address}{params};\n" for address in upstreams)
    text = text[: servers[0].start()] + lines + _UPSTREAM_SERVER.sub("", text[servers[0].start() :])
    text = _LISTEN.sub(rf"\g<1>listen {HOST}:{port};", text)
    files = "".join(f"    {name}_temp_path {work_dir / name};\n" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = text.replace("http {\n", f"http {{\n    access_log off;\n{files}", 1)
    return f"pid {work_dir / 'nginx.pid'};\nerror_log {work_dir / 'error.log'} warn;\n" + text


def write_local_config(upstreams: list[str], port: int, work_dir: Path, source: Path = COMPOSE_CONFIG) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "nginx.conf"
    path.write_text(local_config(source.read_text(), upstreams, port, work_dir))
    return path


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("/usr/sbin/nginx")


def nginx_command(config: Path) -> list[str]:
    binary = nginx_binary()
    if binary is None:
        raise TileserverError("nginx is not installed (Debian: apt-get install nginx)")
    # -e: the error log before the config's own is read (nginx >= 1.19.5)
    return [binary, "-c", str(config), "-p", str(config.parent), "-e", str(config.parent / "error.log")]


class LocalNginx:
    """nginx on a free 127.0.0.1 port in front of ``upstreams``; ``url`` is its base URL."""

    def __init__(self, upstreams: list[str], work_dir: Path, startup_s: float = 10.0):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.config = write_local_config(upstreams, self.port, work_dir)
        self.startup_s = startup_s
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "LocalNginx":
        command = [*nginx_command(self.config), "-g", "daemon off;"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = self.config.parent / "error.log"
        try:  # /healthz of an upstream, through nginx
            wait_healthy(f"{self.url}/healthz", self.process, self.startup_s, "nginx",
                         lambda: log.read_text() if log.exists() else "")
        except TileserverError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
