"""`tileserver serve --workers N` (uvicorn worker processes built by the app factory) and
`--decode-processes N` (entropy decoding in worker processes), with real servers and codecs."""
from __future__ import annotations

import asyncio
import pickle
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tileserver.cli import main
from tileserver.codecs import ids
from tileserver.codecs.learned import LearnedCodec
from tileserver.engine import DecodeEngine
from tileserver.engine.processes import PreparePool
from tileserver.errors import CodecError
from tileserver.loadtest.local_server import LocalServer
from tileserver.slides.tiled import StoredSlide

from .engine_fixtures import expected_tile, learned_crop
from .scale_helpers import assert_tile, redis_server, tile_url  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def learned_slide(tmp_path_factory, cmu_svs):
    """A 768 x 512 crop coded with a small real learned model; TILESERVER_MODELS points at it
    (decode processes inherit the environment)."""
    with learned_crop(tmp_path_factory.mktemp("processes"), cmu_svs, 768, 512) as path:
        yield path


def worker_pids(server: LocalServer) -> list[int]:
    """uvicorn's worker processes: the server's children started by multiprocessing's spawn."""
    pids = []
    for pid in Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split():
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
            pids.append(int(pid))
    return pids


def test_two_workers_serve_correct_tiles(tmp_path, encoded_cmu, redis_server):
    shutil.copy(encoded_cmu, tmp_path / "cmu.tif")
    cells = [(c, r) for r in range(4) for c in range(9)]
    with LocalServer(tmp_path, cache_mb=64, options=("--workers", "2", "--redis", redis_server.url)) as server:
        assert len(worker_pids(server)) == 2
        with httpx.Client(timeout=60) as client, ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(lambda cell: client.get(tile_url(server.url, "cmu.tif", *cell)), cells * 2))
    for response, (col, row) in zip(responses, cells * 2):
        assert_tile(response, tmp_path / "cmu.tif", col, row)
    assert "2 workers" in server.output()


def test_decode_processes_give_the_pixels_of_the_threaded_path(learned_slide):
    slide = StoredSlide(learned_slide)
    across, down = slide.pyramid.grid(0)
    cells = [(c, r) for r in range(down) for c in range(across)]

    async def run():
        engine = DecodeEngine("cpu", cpu_workers=2, decode_processes=2)
        try:
            return await asyncio.gather(*(engine.tile(slide, 0, c, r) for c, r in cells)), engine.stats
        finally:
            engine.close()

    tiles, stats = asyncio.run(run())
    prepared = stats.registry.get_sample_value("tileserver_decode_seconds_count", {"codec": "learned", "stage": "prepare"})
    assert prepared == len(cells)
    for (c, r), tile in zip(cells, tiles):
        alone = expected_tile(learned_slide, 0, c, r)
        assert tile.shape == alone.shape
        assert np.abs(tile.astype(int) - alone).max() <= 1  # batched g_s vs one tile: float rounding


def test_a_prepared_learned_tile_pickles_by_model_name(learned_slide):
    from tileserver.format.reader import NeuralTiff

    with NeuralTiff(learned_slide) as reader:
        _, body = reader.tile_payload(0, 0, 0)
    codec = LearnedCodec()
    prepared = codec.prepare(body)
    data = pickle.dumps(prepared)
    assert len(data) < prepared.y_hat.numel() * 4 + 1000  # the tensor, not the model
    back = pickle.loads(data)
    assert back.model is prepared.model and (back.height, back.width) == (prepared.height, prepared.width)
    assert np.array_equal(codec.synthesize([back])[0], codec.synthesize([prepared])[0])


def test_a_bad_body_fails_alone_in_a_decode_process():
    pool = PreparePool(1)
    try:
        with pytest.raises(CodecError, match="unknown version"):
            asyncio.run(pool.prepare(ids.LEARNED, b"\x09garbage"))
    finally:
        pool.close()


@pytest.mark.parametrize("options, message", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--decode-processes", "-1"], "--decode-processes must be 0 or more"),
    (["--redis", "http://127.0.0.1:6379"], "expected redis://HOST:PORT/DB"),
    (["--redis", "redis://127.0.0.1:port/0"], "Port could not be cast"),
])
def test_serve_refuses_bad_scale_options(tmp_path, capsys, options, message):
    assert main(["serve", str(tmp_path), *options]) == 2
    assert message in capsys.readouterr().err
