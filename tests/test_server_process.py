"""The server as users run it: `tileserver serve` in its own process, and a client that
leaves before its answer (its queued decodes are dropped, the server keeps serving)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tileserver.engine import DecodeEngine
from tileserver.precision import CODEC_PRECISION_ENV, cpu_precision
from tileserver.server.app import create_app

from .live_server import serve

STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_serve_command(tmp_path, encoded_cmu):
    shutil.copy(encoded_cmu, tmp_path / "cmu.tif")
    port = free_port()
    command = [sys.executable, "-m", "tileserver.cli", "serve", str(tmp_path), "--port", str(port),
               "--device", "cpu", "--cache-mb", "32"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "server did not answer /healthz"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health.json() == {"status": "ok", "device": "cpu"}
        tile = httpx.get(f"http://127.0.0.1:{port}/deepzoom/cmu.tif_files/12/3_4.jpeg", timeout=30)
        assert tile.status_code == 200 and tile.headers["content-type"] == "image/jpeg"
    finally:
        process.terminate()
        process.wait(timeout=30)
    printed = process.stdout.read()
    assert f"http://127.0.0.1:{port}/" in printed
    assert f"learned g_s in {cpu_precision(CODEC_PRECISION_ENV)}" in printed


def test_serve_refuses_an_unknown_precision(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tileserver.cli", "serve", str(tmp_path), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, CODEC_PRECISION_ENV: "fp16"})
    assert done.returncode == 2 and "must be auto, fp32 or bf16" in done.stderr


def test_serve_refuses_a_missing_directory(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tileserver.cli", "serve", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "not a directory" in done.stderr


def test_a_client_that_leaves_has_its_tiles_dropped(tmp_path, tcga_svs):
    """A full-resolution region of a JPEG 2000 SVS queues ~250 slow tile reads on one worker;
    the client leaves as soon as they are queued."""
    shutil.copy(tcga_svs, tmp_path / "tcga.svs")
    engine = DecodeEngine("cpu", cpu_workers=1)
    with serve(create_app(tmp_path, engine=engine)) as url:
        port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /iiif/3/tcga.svs/full/max/0/default.png HTTP/1.1\r\nHost: x\r\n\r\n")
            while metric(httpx.get(f"{url}/metrics", timeout=10).text,
                         'tileserver_cache_misses_total{cache="decoded"}') == 0:  # reads are queued
                assert time.monotonic() < deadline, "the request never reached the engine"
                time.sleep(0.01)
        while True:  # bounded wait for the server to notice
            text = httpx.get(f"{url}/metrics", timeout=10).text
            if metric(text, 'tileserver_request_seconds_count{route="iiif3",status="499"}') >= 1:
                break
            assert time.monotonic() < deadline, "the disconnect was never noticed"
            time.sleep(0.05)
        queued = metric(text, 'tileserver_cache_misses_total{cache="decoded"}')
        assert queued == 18 * 14  # every tile of level 0 was asked for
        assert metric(text, "tileserver_decodes_dropped_total") >= queued / 2
        answer = httpx.get(f"{url}/iiif/3/tcga.svs/0,0,512,512/256,/0/default.jpg", timeout=60)
        assert answer.status_code == 200


def test_serve_refuses_cuda_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    done = subprocess.run([sys.executable, "-m", "tileserver.cli", "serve", str(tmp_path), "--device", "cuda"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no CUDA device" in done.stderr
