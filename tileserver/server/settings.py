"""The settings of `tileserver serve`, handed to uvicorn's worker processes in one environment
variable (uvicorn starts each worker from an import string, so the app is built by a factory)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from tileserver.errors import TileserverError

ENV = "TILESERVER_SERVE_SETTINGS"


@dataclass(frozen=True)
class ServeSettings:
    directory: str
    device: str = "auto"
    cache_mb: int = 1024
    omero_prefix: str = "/omero"
    redis_url: str | None = None
    decode_processes: int = 0

    def to_env(self) -> dict[str, str]:
        return {ENV: json.dumps(asdict(self))}

    @classmethod
    def from_env(cls) -> "ServeSettings":
        text = os.environ.get(ENV)
        if not text:
            raise TileserverError(f"${ENV} is not set: worker processes are started by `tileserver serve`")
        return cls(**json.loads(text))
