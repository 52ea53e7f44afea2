"""Numeric slide ids, OMERO request parameters and the OMERO tile arithmetic, without a server."""
from __future__ import annotations

import hashlib

import pytest

from tileserver.server.omero import mount
from tileserver.server.omero_params import MAX_TILE_SIDE, parse_quality, parse_tile
from tileserver.slides import numeric_ids
from tileserver.slides.numeric_ids import NumericIds, numeric_id
from tileserver.slides.registry import SlideRegistry
from tileserver.slides.tiles import Pyramid, plan_region


def test_numeric_id_is_the_first_52_bits_of_sha256_plus_one():
    # pinned: ids are stored in users' QuPath projects, so the derivation must never change
    for slide_id in ("cmu.tiff", "sub dir/ü.svs", "a/b/c.ndpi"):
        expected = int(hashlib.sha256(slide_id.encode()).hexdigest()[:13], 16) + 1
        assert numeric_id(slide_id) == expected
        assert 1 <= numeric_id(slide_id) <= 2**52 < 2**53  # exact in a JavaScript number


def test_numeric_ids_differ_between_paths():
    ids = {numeric_id(f"dir{i // 100}/slide-{i}.tiff") for i in range(5000)}
    assert len(ids) == 5000


def _tree(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not read by the id lookup")


def test_lookup_finds_every_slide_and_nothing_else(tmp_path):
    _tree(tmp_path, "a.tiff", "sub/b.svs", "notes.txt", ".hidden.tiff")
    numbers = NumericIds(SlideRegistry(tmp_path))
    assert numbers.slide_id(numeric_id("a.tiff")) == "a.tiff"
    assert numbers.slide_id(numeric_id("sub/b.svs")) == "sub/b.svs"
    assert numbers.slide_id(numeric_id("notes.txt")) is None
    assert numbers.slide_id(numeric_id(".hidden.tiff")) is None
    assert numbers.slide_id(12345) is None


def test_a_slide_added_later_is_found_after_a_rescan(tmp_path, monkeypatch):
    monkeypatch.setattr(numeric_ids, "RESCAN_SECONDS", 0.0)
    _tree(tmp_path, "a.tiff")
    numbers = NumericIds(SlideRegistry(tmp_path))
    assert numbers.slide_id(numeric_id("late.tiff")) is None
    _tree(tmp_path, "late.tiff")
    assert numbers.slide_id(numeric_id("late.tiff")) == "late.tiff"


def test_two_slides_with_one_number_serve_neither(tmp_path, monkeypatch):
    monkeypatch.setattr(numeric_ids, "numeric_id", lambda slide_id: 7)
    _tree(tmp_path, "a.tiff", "b.tiff")
    assert NumericIds(SlideRegistry(tmp_path)).slide_id(7) is None


@pytest.mark.parametrize("text, expected", [
    ("0,0,0,256,256", (0, 0, 0, 256, 256)),
    ("3,12,7,1024,1", (3, 12, 7, 1024, 1)),
])
def test_parse_tile(text, expected):
    assert parse_tile(text) == expected


@pytest.mark.parametrize("text", [
    None, "", "0,0,0,256", "0,0,0,256,256,1", "0,-1,0,256,256", "a,0,0,256,256", "0,0,0,0,256",
    f"0,0,0,{MAX_TILE_SIDE + 1},256", "0,0,0,256.0,256", " 0,0,0,256,256",
])
def test_parse_tile_refuses(text):
    with pytest.raises(ValueError):
        parse_tile(text)


@pytest.mark.parametrize("text, expected", [
    ("0.900000", 90), ("0,900000", 90), ("1", 100), ("0.05", 5), ("0,001", 1), (".5", 50), (None, 90),
])
def test_parse_quality(text, expected):
    assert parse_quality(text) == expected


@pytest.mark.parametrize("text", ["", ",", "0", "1.5", "abc", "0.9.1", "-0.5", "nan", "0,9,0"])
def test_parse_quality_refuses(text):
    with pytest.raises(ValueError):
        parse_quality(text)


def test_level_tile_region_reads_exactly_that_level():
    p = Pyramid(1001, 700, 256, 3)  # level 1: 501 x 350, level 2: 251 x 175
    assert p.level_tile_region(1, 1, 1, 256, 256) == (512, 512, 490, 188, 245, 94)
    # the edge tile's footprint runs 1 px past the slide, as level 1's last pixel does
    for level, col, row, w, h in [(1, 1, 1, 256, 256), (2, 0, 0, 256, 256), (0, 3, 2, 300, 300), (1, 0, 0, 1000, 7)]:
        x, y, rw, rh, out_w, out_h = p.level_tile_region(level, col, row, w, h)
        plan = plan_region(p, x, y, rw, rh, out_w, out_h)
        assert plan.level == level
        assert (plan.box[2] - plan.box[0], plan.box[3] - plan.box[1]) == (out_w, out_h)


@pytest.mark.parametrize("tile", [(3, 0, 0, 256, 256), (1, 2, 0, 256, 256), (0, 0, 3, 256, 256), (0, 0, 0, 0, 5)])
def test_level_tile_region_outside(tile):
    assert Pyramid(1001, 700, 256, 3).level_tile_region(*tile) is None


@pytest.mark.parametrize("prefix", ["/omero", "/lab/omero", "/a.b/c~d"])
def test_mount_prefix(tmp_path, prefix):
    assert mount(prefix, SlideRegistry(tmp_path)).path == prefix


@pytest.mark.parametrize("prefix", ["", "/", "omero", "/omero/", "/a//b", "/..", "/./omero", "/om ero"])
def test_mount_refuses_prefix(tmp_path, prefix):
    with pytest.raises(ValueError):
        mount(prefix, SlideRegistry(tmp_path))
