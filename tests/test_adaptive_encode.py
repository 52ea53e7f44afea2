"""`--codec adaptive:λ` end to end: keep, compress and glass tiles in one real slide, read back
through the reader against its decisions page; worker processes; the guard on kept tiles; bad
options; the decisions heatmap endpoint."""
from __future__ import annotations

import io
from dataclasses import replace
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image

from tileserver import codecs
from tileserver.cli import main
from tileserver.codecs.ids import JPEG, JPEGXL, SR4
from tileserver.encode.adaptive import THRESHOLD
from tileserver.encode.batch import BatchItem, is_up_to_date
from tileserver.encode.encoder import EncodeSettings
from tileserver.encode.pyramid import tile_pixels
from tileserver.format.reader import NeuralTiff
from tileserver.quality import psnr
from tileserver.server.app import create_app
from tileserver.slides.source import open_source
from tileserver.sr.heatmap import COMPRESS_RGB, KEEP_RGB

from .adaptive_fixtures import POLICY, adaptive_models, adaptive_slide
from .live_server import serve
from .test_cli_errors import assert_clean_failure, run_cli

pytestmark = pytest.mark.slides


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("adaptive")
    patch = pytest.MonkeyPatch()
    patch.setenv("TILESERVER_MODELS", str(adaptive_models(work / "models")))
    yield work
    patch.undo()


@pytest.fixture(scope="module")
def encoded(work, cmu_svs):
    """Encoded in two worker processes (spawned: they load the policy themselves)."""
    return adaptive_slide(cmu_svs, work, workers=2)


def level_codec_ids(reader: NeuralTiff, level: int) -> np.ndarray:
    """Codec id per tile (0 for glass), down x across."""
    across, down = reader.tile_grid(level)
    return np.array([[0 if (item := reader.tile_payload(level, c, r)) is None else item[0]
                      for c in range(across)] for r in range(down)])


def test_tiles_follow_the_decisions_page(encoded):
    path, source_path = encoded
    with NeuralTiff(path) as reader, open_source(source_path) as source:
        decisions = reader.page("decisions")
        ids = level_codec_ids(reader, 0)
        assert decisions.dtype == np.float32 and decisions.shape == ids.shape
        glass = np.isnan(decisions)
        compress = ~glass & (decisions >= THRESHOLD)
        assert glass.any() and compress.any() and (~glass & ~compress).any()  # all three kinds
        assert np.array_equal(ids == 0, glass) and np.array_equal(ids == SR4, compress)
        assert np.all(ids[~glass & ~compress] == JPEG)
        across, down = reader.tile_grid(0)
        assert all(reader.tile_bytes(0, c, r) == b"" for r in range(down) for c in range(across) if glass[r, c])

        rows, cols = np.nonzero(compress)
        bodies = [reader.tile_payload(0, c, r) for r, c in zip(rows, cols)]
        for r, c, tile in zip(rows, cols, codecs.decode_many(bodies)):
            original, _, _ = tile_pixels(source, reader.levels[0], reader.tile_size, c, r)
            assert tile.shape == (256, 256, 3) and psnr(original, tile) > 20  # restored tissue

        meta = reader.metadata
        every = np.concatenate([level_codec_ids(reader, k).ravel() for k in range(len(reader.levels))])
        assert meta.stats["compressed_tiles"] == int((every == SR4).sum())
        assert meta.stats["tiles_per_codec"] == {"jpeg:90": int((every == JPEG).sum()),
                                                 "sr4": int((every == SR4).sum())}
        assert meta.encoder["adaptive"]["policy"] == POLICY and meta.encoder["adaptive"]["lmbda"] == 0.5
        assert [e["name"] for e in meta.codecs] == ["jpeg", "sr4"]


def test_info_reports_the_agent(encoded, capsys):
    assert main(["info", str(encoded[0])]) == 0
    out = capsys.readouterr().out
    assert f"adaptive   λ 0.5, policy {POLICY}, keep jpeg:90" in out and "decisions" in out


def test_one_process_and_a_guarded_keep_codec_make_the_same_decisions(encoded, work, cmu_svs):
    """The policy decides alike in one process and in workers; the quality guard and the target
    SSIM choose among the keep candidates only and never overturn a compress decision."""
    path, _ = encoded
    other, _ = adaptive_slide(cmu_svs, work, "guarded.tif", workers=1, keep_codec="jxl:1.0,jpeg:90",
                              target_ssim=0.97)
    with NeuralTiff(path) as first, NeuralTiff(other) as second:
        assert np.array_equal(first.page("decisions"), second.page("decisions"), equal_nan=True)
        compress = first.page("decisions") >= THRESHOLD
        ids = level_codec_ids(second, 0)
        assert np.all(ids[compress] == SR4)
        assert set(np.unique(ids[~compress])) <= {0, JPEG, JPEGXL}
        assert second.metadata.encoder["keep_codec"] == "jxl:1.0,jpeg:90"
        assert second.metadata.encoder["target_ssim"] == 0.97


def test_batch_reencodes_when_keep_codec_or_policy_change(encoded):
    path, source = encoded
    item, same = BatchItem(source, path), EncodeSettings(codecs=["adaptive:0.5"], policy=POLICY)
    assert is_up_to_date(item, same)
    assert not is_up_to_date(item, replace(same, keep_codec="jxl:1.0"))
    assert not is_up_to_date(item, replace(same, policy="cda-b32v2"))
    assert not is_up_to_date(item, replace(same, codecs=["adaptive:1.0"]))


def test_lambda_out_of_range_is_one_error_line_and_no_output(tmp_path, cmu_svs):
    out = tmp_path / "out.tiff"
    result = run_cli("encode", cmu_svs, "-o", out, "--quiet", "--codec", "adaptive:1.5")
    assert_clean_failure(result, out)
    assert "λ must be in [0.1, 1.0], not 1.5" in result.stderr


@pytest.mark.parametrize("options, message", [
    (["--codec", "adaptive:0.05"], "λ must be in [0.1, 1.0]"),
    (["--codec", "adaptive:half"], "bad codec spec"),
    (["--codec", "adaptive:0.5,jpeg:90"], "stands alone"),
    (["--codec", "jpeg:90", "--keep-codec", "jpeg:80"], "only with --codec adaptive"),
    (["--codec", "adaptive", "--keep-codec", "sr4"], "cannot be adaptive or sr4"),
    (["--codec", "adaptive", "--policy", "cda-absent"], "not found"),
])
def test_bad_adaptive_options_are_refused(tmp_path, cmu_svs, capsys, options, message):
    out = tmp_path / "out.tiff"
    assert main(["encode", str(cmu_svs), "-o", str(out), "--quiet", *options]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_decisions_heatmap_endpoint(encoded, work):
    path, source = encoded
    root = work / "root"
    root.mkdir(exist_ok=True)
    shutil.copy(path, root / "adaptive.tif")
    shutil.copy(source, root / "plain.png")
    with NeuralTiff(path) as reader:
        decisions = reader.page("decisions")
    with serve(create_app(root, device="cpu", cache_mb=16)) as url, httpx.Client(base_url=url, timeout=60) as client:
        entry = client.get("/api/slides/adaptive.tif").json()
        assert entry["urls"]["decisions"] == "/api/slides/adaptive.tif/decisions.png"
        assert entry["adaptive"]["policy"] == POLICY
        response = client.get(entry["urls"]["decisions"])
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        heatmap = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))
        block = heatmap.shape[0] // decisions.shape[0]
        assert heatmap.shape[:2] == (decisions.shape[0] * block, decisions.shape[1] * block)
        centres = heatmap[block // 2 :: block, block // 2 :: block]
        glass = np.isnan(decisions)
        assert np.all(centres[glass][:, 3] == 0) and np.all(centres[~glass][:, 3] > 0)
        compress, keep = ~glass & (decisions >= THRESHOLD), ~glass & (decisions < THRESHOLD)
        distance = lambda rgb, colour: np.abs(rgb[..., :3].astype(float) - colour).sum(-1)  # noqa: E731
        assert np.all(distance(centres[compress], COMPRESS_RGB) < distance(centres[compress], KEEP_RGB))
        assert np.all(distance(centres[keep], KEEP_RGB) < distance(centres[keep], COMPRESS_RGB))

        plain = client.get("/api/slides/plain.png").json()
        assert "decisions" not in plain["urls"] and "adaptive" not in plain
        missing = client.get("/api/slides/plain.png/decisions.png")
        assert missing.status_code == 404 and "no decisions page" in missing.text
        assert client.get("/api/slides/absent.tif/decisions.png").status_code == 404
