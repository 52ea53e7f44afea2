"""Encoding real slides: levels, metadata, glass exactly where the mask is empty, decode fidelity,
export to OpenSlide, and the quality guard."""
from __future__ import annotations

import math

import numpy as np
import openslide
import pytest
import tifffile

from tileserver import codecs
from tileserver.encode.encoder import EncodeSettings, encode_slide, mask_under_tile
from tileserver.encode.export import export_jpeg_tiff
from tileserver.encode.pyramid import tile_pixels
from tileserver.encode.rate import TileEncoder
from tileserver.format.reader import NeuralTiff
from tileserver.quality import psnr
from tileserver.slides.source import open_source

pytestmark = pytest.mark.slides


def glass_expected(slide: NeuralTiff, level: int, col: int, row: int) -> bool:
    """Recompute, from the stored mask, whether a tile has no tissue at all."""
    mask = slide.page("tissue_mask") > 0
    mask_ds = slide.metadata.encoder["mask_downsample"]
    lv = slide.levels[level]
    ts = slide.tile_size
    x0, y0 = col * ts * lv.downsample / mask_ds, row * ts * lv.downsample / mask_ds
    width = min(ts, lv.width - col * ts) * lv.downsample / mask_ds
    height = min(ts, lv.height - row * ts) * lv.downsample / mask_ds
    crop = mask[int(y0): max(int(y0) + 1, math.ceil(y0 + height)), int(x0): max(int(x0) + 1, math.ceil(x0 + width))]
    return not crop.any()


def check_encoded(path, source_path, min_psnr):
    with NeuralTiff(path) as slide, open_source(source_path) as source:
        meta = slide.metadata
        assert meta.levels[0].width, meta.levels[0].height == source.dimensions
        last = meta.levels[-1]
        assert last.width <= meta.tile_size and last.height <= meta.tile_size
        assert [lv.downsample for lv in meta.levels] == [2.0**k for k in range(len(meta.levels))]
        assert meta.source["name"] == source_path.name and len(meta.source["sha256"]) == 64
        stats = meta.stats
        mask, mask_ds = slide.page("tissue_mask") > 0, meta.encoder["mask_downsample"]
        assert stats["tiles"] == sum(a * d for a, d in (slide.tile_grid(i) for i in range(len(meta.levels))))
        glass = 0
        for level in range(len(meta.levels)):
            across, down = slide.tile_grid(level)
            for row in range(down):
                for col in range(across):
                    item = slide.tile_payload(level, col, row)
                    assert (item is None) == glass_expected(slide, level, col, row), (level, col, row)
                    if item is None:
                        glass += 1
                        continue
                    if level <= 1 and (col + row) % 3 == 0:  # a sample of tiles against the source
                        decoded = codecs.decoder(item[0]).decode(item[1])
                        original, w, h = tile_pixels(source, meta.levels[level], meta.tile_size, col, row)
                        tissue = mask_under_tile(mask, mask_ds, meta.levels[level], meta.tile_size, col, row, w, h)
                        # glass pixels are set to the background before encoding, so compare with that
                        expected = original[:h, :w].copy()
                        expected[~tissue] = meta.background
                        assert psnr(expected, decoded[:h, :w]) > min_psnr, (level, col, row)
        assert glass == stats["glass_tiles"] > 0
        return meta


def test_encode_cmu_jpeg(encoded_cmu, cmu_svs):
    meta = check_encoded(encoded_cmu, cmu_svs, min_psnr=26)  # 4:2:0 chroma on sharp stain edges
    assert meta.mpp == (0.499, 0.499) and meta.objective_power == 20.0
    assert set(meta.pages) == {"tissue_mask", "label", "macro"}
    assert meta.stats["tiles_per_codec"] == {"jpeg:90": meta.stats["tiles"] - meta.stats["glass_tiles"]}


def test_encode_tcga_jxl(tmp_path, tcga_svs):
    out = tmp_path / "tcga.tiff"
    summary = encode_slide(tcga_svs, out, EncodeSettings(codecs=["jxl:1.0"], workers=2), progress=False)
    meta = check_encoded(out, tcga_svs, min_psnr=30)
    assert meta.mpp is None
    assert summary.output_bytes < summary.reference_jpeg90_bytes
    assert summary.glass_tiles / summary.tiles > 0.1


def exported_tile_bytes(path, level, col, row) -> bytes:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[level]
        index = row * math.ceil(page.imagewidth / page.tilewidth) + col
        tif.filehandle.seek(page.dataoffsets[index])
        return tif.filehandle.read(page.databytecounts[index])


def test_export_opens_in_openslide(tmp_path, encoded_cmu):
    out = export_jpeg_tiff(encoded_cmu, tmp_path / "export.tiff")
    slide = openslide.OpenSlide(str(out))
    with NeuralTiff(encoded_cmu) as ours:
        assert slide.level_dimensions == tuple((lv.width, lv.height) for lv in ours.levels)
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.499, abs=1e-4)
        for level, col, row in [(0, 2, 4), (0, 0, 0), (2, 1, 1)]:
            scale = 256 * 2**level
            region = np.asarray(slide.read_region((col * scale, row * scale), level, (256, 256)))
            item = ours.tile_payload(level, col, row)
            if item is None:
                assert region[..., 3].max() == 0  # glass stays a zero-byte, transparent tile
            else:
                ours_px = codecs.decoder(item[0]).decode(item[1])
                assert psnr(ours_px, region[..., :3]) > 35
                assert exported_tile_bytes(out, level, col, row) == item[1]  # JPEG copied, not re-encoded


def test_guard_falls_back_when_candidate_is_under_the_floor(cmu_svs):
    with open_source(cmu_svs) as source:
        tile = source.read_region(0, 1024, 1024, 256, 256)
    coarse = TileEncoder(["jxl:8"], floor=0.999)  # nothing at distance 8 reaches SSIM 0.999
    choice = coarse.encode(tile)
    assert choice.fallback and choice.codec.name == "jpeg" and choice.label == "jpeg:90"
    fine = TileEncoder(["jxl:1.0"], floor=0.90)
    assert fine.encode(tile).codec.name == "jxl"


def test_target_ssim_picks_the_smallest_passing_candidate(cmu_svs):
    with open_source(cmu_svs) as source:
        tile = source.read_region(0, 1024, 1024, 256, 256)
    encoder = TileEncoder(["jxl:1.0", "jxl:2.0", "jxl:4.0", "jpeg:90"], target_ssim=0.95)
    choice = encoder.encode(tile)
    sizes = {spec: len(codec.encode(tile)) for spec, codec in encoder.candidates}
    from tileserver.quality import ssim
    passing = [s for s, c in encoder.candidates if ssim(tile, c.decode(c.encode(tile))) >= 0.95]
    assert choice.label == min(passing, key=sizes.get)
