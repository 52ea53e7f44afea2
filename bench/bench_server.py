"""Server benchmark (not a test): tiles/s and latency over HTTP on 127.0.0.1.

1. Warm cache, JPEG-coded slide: our server (`tileserver serve` app) on the slide encoded with
   jpeg:90, against openslide-python's DeepZoomGenerator behind a minimal Starlette server on
   the source slide, the usual tool for this job. Same DeepZoom URLs (tile 256, overlap 0),
   same client, same run; each server in its own process, one after the other.
2. Cold cache, learned-coded slide: every level-0 tile requested at once from a fresh server,
   with micro-batching and without (max batch 1).

    python bench/bench_server.py [--slide PATH] [--learned-model NAME] [--rounds 3]

Without --learned-model, part 2 uses an untrained model of the production size
(bmshj2018-hyperprior N=128 M=192): the decode work is the real one, the pixels are not.
Results go to bench/results/server.md and server.json.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_SLIDE = REPO.parent / "shared" / "data" / "slides" / "tcga-cr-7395-01a-01-ts1.svs"
RESULTS = REPO / "bench" / "results"


# ---- the two servers, each run in a process of its own ----
def openslide_app(path: str):
    """The baseline: DeepZoomGenerator as in openslide-python's deepzoom_server example."""
    import openslide
    from openslide.deepzoom import DeepZoomGenerator
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    generator = DeepZoomGenerator(openslide.OpenSlide(path), tile_size=256, overlap=0)

    def tile(request):  # sync: Starlette runs it in its thread pool, as Flask would in threads
        p = request.path_params
        image = generator.get_tile(p["level"], (p["col"], p["row"]))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        return Response(buffer.getvalue(), media_type="image/jpeg")

    return Starlette(routes=[Route("/deepzoom/{name}_files/{level:int}/{col:int}_{row:int}.jpeg", tile)])


def _serve(kind: str, target: str, port: int, max_batch: int, models: str | None) -> None:
    import uvicorn

    if models:
        os.environ["TILESERVER_MODELS"] = models
    if kind == "openslide":
        app = openslide_app(target)
    else:
        from tileserver.engine import DecodeEngine
        from tileserver.server.app import create_app

        app = create_app(target, engine=DecodeEngine("cpu", cache_bytes=768 << 20, max_batch=max_batch))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class Server:
    def __init__(self, kind: str, target: Path, max_batch: int = 16, models: str | None = None):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(target=_serve, args=(kind, str(target), self.port, max_batch, models))

    def __enter__(self) -> "Server":
        self.process.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"server on port {self.port} did not start")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(30)


# ---- the client ----
async def fetch_all(url: str, paths: list[str], concurrency: int) -> list[float]:
    """Latency of every request, in seconds; raises on any non-200."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        async def one(path: str) -> float:
            async with gate:
                started = time.perf_counter()
                response = await client.get(path)
                elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
            return elapsed
        return await asyncio.gather(*(one(p) for p in paths))


def measure(url: str, paths: list[str], concurrency: int) -> dict:
    started = time.perf_counter()
    latencies = asyncio.run(fetch_all(url, paths, concurrency))
    seconds = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(paths), "seconds": round(seconds, 3), "tiles_per_s": round(len(paths) / seconds, 1),
            "p50_ms": round(q[49] * 1000, 2), "p95_ms": round(q[94] * 1000, 2), "p99_ms": round(q[98] * 1000, 2)}


def deepzoom_paths(name: str, slide_path: Path, levels: int | None = None) -> list[str]:
    """Every tile of the stored levels (or the top ``levels`` of them), as DeepZoom URLs."""
    from tileserver.slides.tiled import open_tiled

    pyramid = open_tiled(slide_path).pyramid
    top = pyramid.deepzoom_levels - 1
    paths = []
    for k in range(pyramid.level_count if levels is None else levels):
        across, down = pyramid.grid(k)
        paths += [f"/deepzoom/{name}_files/{top - k}/{c}_{r}.jpeg" for r in range(down) for c in range(across)]
    return paths


# ---- the two parts ----
def warm_jpeg(slide: Path, work: Path, rounds: int, concurrency: int) -> dict:
    from tileserver.encode.encoder import EncodeSettings, encode_slide

    ours_dir = work / "ours"
    ours_dir.mkdir()
    encode_slide(slide, ours_dir / "slide.tif", EncodeSettings(codecs=["jpeg:90"], workers=2), progress=False)
    paths = deepzoom_paths("slide.tif", ours_dir / "slide.tif")
    random.Random(0).shuffle(paths)
    results = {}
    for kind, target in [("tileserver", ours_dir), ("openslide", slide)]:
        with Server(kind, target) as server:
            measure(server.url, paths, concurrency)  # warm-up: every tile once
            results[kind] = measure(server.url, paths * rounds, concurrency)
    results["ratio_tiles_per_s"] = round(results["tileserver"]["tiles_per_s"] / results["openslide"]["tiles_per_s"], 2)
    results["tiles"] = len(paths)
    return results


def cold_learned(slide: Path, work: Path, model: str | None, concurrency: int, repeats: int) -> dict:
    from PIL import Image

    from tileserver.encode.encoder import EncodeSettings, encode_slide
    from tileserver.slides.source import open_source

    models = None
    if model is None:
        models, model = str(work / "models"), "bench-untrained"
        _untrained_model(Path(models), model)
        os.environ["TILESERVER_MODELS"] = models
    crop = work / "crop.png"
    with open_source(slide) as source:  # 2048 x 1024 of tissue: 32 level-0 tiles
        width, height = source.dimensions
        Image.fromarray(source.read_region(0, width // 2 - 1024, height // 2 - 512, 2048, 1024)).save(crop)
    learned_dir = work / "learned"
    learned_dir.mkdir()
    spec = f"learned:{model}"
    encode_slide(crop, learned_dir / "slide.tif", EncodeSettings(codecs=[spec], fallback=spec, glass="keep"),
                 progress=False)
    paths = deepzoom_paths("slide.tif", learned_dir / "slide.tif", levels=1)
    from tileserver.codecs.learned_models import load_model, models_dir

    card = load_model(model, Path(models) if models else models_dir())
    results = {"model": model, "untrained": models is not None, "tiles": len(paths) - 1, "sha256": card.sha256,
               **{k: card.config.get(k) for k in ("arch", "N", "M")}}
    runs: dict[str, list[dict]] = {"batched": [], "unbatched": []}
    for _ in range(repeats):  # alternated, so that drifting load on a shared machine hits both
        for label, max_batch in [("batched", 16), ("unbatched", 1)]:
            with Server("tileserver", learned_dir, max_batch=max_batch, models=models) as server:
                asyncio.run(fetch_all(server.url, paths[:1], 1))  # loads the model: cold tiles, not a cold process
                runs[label].append(measure(server.url, paths[1:], concurrency))
    for label, measured in runs.items():  # the run with the median throughput, and all of them
        results[label] = sorted(measured, key=lambda r: r["tiles_per_s"])[len(measured) // 2]
        results[label]["all_tiles_per_s"] = [r["tiles_per_s"] for r in measured]
    results["ratio_tiles_per_s"] = round(results["batched"]["tiles_per_s"] / results["unbatched"]["tiles_per_s"], 2)
    return results


def _untrained_model(directory: Path, name: str) -> None:
    import torch

    from tileserver.codecs.hyperprior import build_net
    from tileserver.codecs.learned_models import save_model

    torch.manual_seed(0)
    config = {"arch": "bmshj2018-hyperprior", "N": 128, "M": 192, "lmbda": 0.0}
    net = build_net(config["arch"], config["N"], config["M"])
    net.update(force=True)
    save_model(net.eval(), config, directory / f"{name}.pt")


def report(results: dict) -> str:
    warm, cold = results["warm_jpeg"], results.get("cold_learned")
    lines = [
        f"# Server benchmark ({results['machine']}, load average {results['load_at_start']} at start)",
        "",
        f"Command: `{results['command']}`. Client: httpx, {results['concurrency']} concurrent requests, "
        "127.0.0.1, each server in its own process.",
        "",
        f"## Warm cache, DeepZoom JPEG tiles of {results['slide']} ({warm['tiles']} tiles x {results['rounds']} rounds)",
        "",
        "| server | tiles/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for kind, label in [("tileserver", "tileserver (slide encoded jpeg:90)"),
                        ("openslide", "openslide DeepZoomGenerator + Starlette (source slide)")]:
        r = warm[kind]
        lines.append(f"| {label} | {r['tiles_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} |")
    lines += ["", f"Ratio (tileserver / openslide tiles/s): **{warm['ratio_tiles_per_s']}**", ""]
    if cold:
        kind = (f"{'untrained ' if cold['untrained'] else ''}model {cold['model']}: {cold['arch']} "
                f"N={cold['N']} M={cold['M']}, sha256 {cold['sha256'][:12]}")
        lines += [f"## Cold cache, learned-coded tiles ({cold['tiles']} level-0 tiles, {kind}; "
                  "each fresh server first decodes one other tile, which loads the model)", "",
                  "Each engine started fresh for every run, runs alternated; the median run is shown.", "",
                  "| engine | tiles/s | p50 ms | p95 ms | p99 ms | tiles/s of every run |",
                  "|---|---|---|---|---|---|"]
        for label in ("batched", "unbatched"):
            r = cold[label]
            lines.append(f"| {label} | {r['tiles_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} "
                         f"| {', '.join(map(str, r['all_tiles_per_s']))} |")
        lines += ["", f"Ratio (batched / unbatched tiles/s): **{cold['ratio_tiles_per_s']}**", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slide", type=Path, default=DEFAULT_SLIDE)
    parser.add_argument("--learned-model", help="a model in models/ (default: untrained, production size)")
    parser.add_argument("--skip-learned", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="cold learned runs of each engine, alternated")
    args = parser.parse_args()
    results = {
        "command": " ".join(["python bench/bench_server.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_at_start": round(os.getloadavg()[0], 1),
        "slide": args.slide.name,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["warm_jpeg"] = warm_jpeg(args.slide, Path(tmp), args.rounds, args.concurrency)
        if not args.skip_learned:
            results["cold_learned"] = cold_learned(args.slide, Path(tmp), args.learned_model, 16, args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server.json").write_text(json.dumps(results, indent=2) + "\n")
    text = report(results)
    (RESULTS / "server.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
