"""The container: payload header and CRC, metadata, writer/reader, tifffile and tiffslide reading."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

import tileserver  # noqa: F401  (registers the tifffile decoder)
from tileserver import codecs
from tileserver.errors import CorruptTileError, InputError
from tileserver.format import payload
from tileserver.format.metadata import COMPRESSION_TAG, Level, SlideMetadata
from tileserver.format.reader import NeuralTiff, is_neural_tiff
from tileserver.format.writer import NeuralTiffWriter


def gradient_tile(size=256, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([x, y, (x + y) // 2], axis=-1) % 256
    return np.clip(base + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)


def write_two_level_file(path, spec="jpeg:95"):
    codec = codecs.from_spec(spec)
    tiles = [gradient_tile(seed=i) for i in range(4)]
    stored = [payload.pack(codec.codec_id, codec.encode(t)) if i != 1 else b"" for i, t in enumerate(tiles)]
    meta = SlideMetadata(
        tile_size=256,
        levels=[Level(400, 300, 1.0), Level(200, 150, 2.0)],
        mpp=(0.5, 0.5),
        codecs=[codec.describe()],
    )
    with NeuralTiffWriter(path, 256) as writer:
        writer.add_level(400, 300, stored)
        writer.add_level(200, 150, [payload.pack(codec.codec_id, codec.encode(tiles[0]))])
        writer.add_page("tissue_mask", np.eye(8, dtype=np.uint8) * 255)
        writer.finish(meta)
    return tiles


def test_payload_round_trip_and_crc():
    data = payload.pack(7, b"hello tile")
    assert payload.unpack(data) == (7, b"hello tile")
    flipped = bytearray(data)
    flipped[-1] ^= 0x01
    with pytest.raises(CorruptTileError, match="CRC"):
        payload.unpack(bytes(flipped))
    with pytest.raises(CorruptTileError, match="header says"):
        payload.unpack(data[:-3])
    with pytest.raises(CorruptTileError):
        payload.unpack(b"JUNKJUNKJUNKJUNKJUNK")


def test_metadata_rejects_other_documents():
    with pytest.raises(InputError):
        SlideMetadata.from_json('{"format": "something-else"}')
    meta = SlideMetadata(tile_size=256, levels=[Level(10, 10, 1.0)])
    again = SlideMetadata.from_json(meta.to_json())
    assert again.levels == meta.levels and again.background == (255, 255, 255)
    future = meta.to_json().replace('"format_version":1', '"format_version":99')
    with pytest.raises(InputError, match="version 99"):
        SlideMetadata.from_json(future)


def test_writer_reader_round_trip(tmp_path):
    path = tmp_path / "two.tiff"
    tiles = write_two_level_file(path)
    assert is_neural_tiff(path)
    with NeuralTiff(path) as slide:
        assert [lv.width for lv in slide.levels] == [400, 200]
        assert slide.tile_grid(0) == (2, 2)
        assert slide.tile_bytes(0, 1, 0) == b""  # glass is zero bytes on disk
        assert slide.tile_payload(0, 1, 0) is None
        codec_id, body = slide.tile_payload(0, 0, 1)
        decoded = codecs.decoder(codec_id).decode(body)
        assert np.abs(decoded.astype(int) - tiles[2]).mean() < 3
        assert slide.page("tissue_mask").shape == (8, 8)
        assert slide.metadata.pages == {"tissue_mask": 2}
        with pytest.raises(IndexError):
            slide.tile_bytes(0, 2, 0)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
        assert [p.compression for p in tif.pages[:2]] == [COMPRESSION_TAG, COMPRESSION_TAG]
        assert tif.pages[1].subfiletype == 1
        assert tif.pages[0].tilewidth == 256


def test_tifffile_and_tiffslide_decode_our_tiles(tmp_path):
    import tiffslide

    path = tmp_path / "two.tiff"
    tiles = write_two_level_file(path)
    level0 = tifffile.imread(path, key=0)
    assert level0.shape == (300, 400, 3)
    assert np.abs(level0[:256, :256].astype(int) - tiles[0]).mean() < 3
    slide = tiffslide.TiffSlide(path)
    assert slide.level_dimensions[0] == (400, 300)
    region = slide.read_region((0, 256), 0, (100, 44), as_array=True)
    assert np.abs(region.astype(int) - tiles[2][:44, :100]).mean() < 3


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "never.tiff"

    def broken_tiles():
        yield payload.pack(1, b"x")
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        with NeuralTiffWriter(path, 256) as writer:
            writer.add_level(512, 256, broken_tiles())
    assert list(tmp_path.iterdir()) == []


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "two.tiff"
    write_two_level_file(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.tiff"
    # keep the header and IFDs reachable but drop the tail where the later tiles lie
    with tifffile.TiffFile(path) as tif:
        last_tile_end = int(max(o + c for o, c in zip(tif.pages[0].dataoffsets, tif.pages[0].databytecounts)))
    cut.write_bytes(data[: last_tile_end - 10])
    with pytest.raises(InputError):
        NeuralTiff(cut)
