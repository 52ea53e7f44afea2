"""Training and validation images for the learned codec, read from ``../shared/data``.

Training draws random crops from images held in memory: LC25000 lung patches (JPEG q75 at
224 px, reduced before cropping to hide their 8 px blocking) and tiles of the training slides at
level 0 and at successive 2x reductions (viewers read every level). Validation is disjoint: the
48 tissue tiles of tcga-cr-7395 level 0 listed in the shared notes, and 256 px tissue tiles cut
from the H&E images of histolab's fixtures.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tileserver.encode.tissue import colour_tissue
from tileserver.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_VAL_COORDS = REPO_ROOT.parent / "shared" / "notes" / "val48-tcga-cr-tile-coords.txt"
LC25000 = "patches/train/lc25000-lung"
CMU_SLIDE = "slides/cmu-1-small-region.svs"
# H&E from two scanners: CMU at 0.5 µm/px, the Camelyon lymph node at 29 µm/px.
TRAIN_SLIDES = (CMU_SLIDE, "slides/camelyon-lymph-node-multiframe.dcm")
# What runs trained on before their config recorded ``slides``.
LEGACY_TRAIN_SLIDES = (CMU_SLIDE,)
VAL_SLIDE = "slides/tcga-cr-7395-01a-01-ts1.svs"
VAL_FIXTURES = "patches/val/histolab-fixtures"
# Fixtures that are not H&E tissue (IHC, empty glass, pen on glass) stay out of validation.
NOT_HE = ("ihc", "no-tissue", "almost-white")
VAL_TILE = 256
MIN_TISSUE = 0.5


def tissue_fraction(tile: np.ndarray) -> float:
    """Share of pixels that the encoder's colour rule calls tissue (pen and grey excluded)."""
    return float(colour_tissue(tile).mean())


def _rgb(image: Image.Image) -> np.ndarray:
    if image.mode == "RGBA":  # fixtures and OpenSlide regions: composite on white glass
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"))


def _find(data_dirs: list[Path], relative: str) -> Path | None:
    for data in data_dirs:
        if (data / relative).exists():
            return data / relative
    return None


def read_slide_level0(path: Path) -> np.ndarray:
    import openslide

    with openslide.OpenSlide(str(path)) as slide:
        return _rgb(slide.read_region((0, 0), 0, slide.level_dimensions[0]))


def pyramid(image: np.ndarray, min_side: int) -> list[np.ndarray]:
    """The image and its successive 2x box reductions while both sides stay >= min_side."""
    levels = [image]
    while min(levels[-1].shape[:2]) // 2 >= min_side:
        levels.append(np.asarray(Image.fromarray(levels[-1]).reduce(2)))
    return levels


def lc25000_images(root: Path, crop: int) -> np.ndarray:
    """All LC25000 patches reduced 2x, or less when 2x would leave them smaller than the crop
    (224 px patches give 112 px at 2x; 128 px crops need a 1.75x reduction)."""
    files = sorted(root.rglob("*.jpeg")) + sorted(root.rglob("*.jpg"))
    if not files:
        raise InputError(f"no LC25000 patches under {root}")
    images = []
    for f in files:
        with Image.open(f) as im:
            side = max(crop, round(min(im.size) / 2))
            images.append(np.asarray(im.convert("RGB").resize((side, side), Image.BICUBIC)))
    return np.stack(images)


@dataclass
class CropSampler:
    """Random augmented crops (uint8 N x crop x crop x 3) from in-memory sources.

    Half of each batch (``lc_share``) comes from LC25000, the rest from the slide levels, each
    level drawn in proportion to its area, as an encoded pyramid holds tiles (level 0 is about
    three quarters of them); slide crops with under 25% tissue are redrawn a few times. All
    randomness comes from ``rng`` so that a checkpoint of its state resumes the same stream.
    """

    lc: np.ndarray | None
    slide_levels: list[np.ndarray]
    crop: int
    lc_share: float = 0.5
    jitter: float = 0.04

    def __post_init__(self):
        areas = np.array([level.shape[0] * level.shape[1] for level in self.slide_levels], float)
        self._level_odds = areas / areas.sum() if len(areas) else areas

    def batch(self, rng: np.random.Generator, size: int) -> np.ndarray:
        out = np.empty((size, self.crop, self.crop, 3), np.uint8)
        for i in range(size):
            use_lc = self.lc is not None and (not self.slide_levels or rng.random() < self.lc_share)
            out[i] = self._augment(rng, self._lc_crop(rng) if use_lc else self._slide_crop(rng))
        return out

    def _crop_of(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        y = rng.integers(0, image.shape[0] - self.crop + 1)
        x = rng.integers(0, image.shape[1] - self.crop + 1)
        return image[y : y + self.crop, x : x + self.crop]

    def _lc_crop(self, rng: np.random.Generator) -> np.ndarray:
        return self._crop_of(rng, self.lc[rng.integers(len(self.lc))])

    def _slide_crop(self, rng: np.random.Generator) -> np.ndarray:
        level = self.slide_levels[rng.choice(len(self._level_odds), p=self._level_odds)]
        for _ in range(8):
            crop = self._crop_of(rng, level)
            if tissue_fraction(crop[::4, ::4]) >= 0.25:
                break
        return crop

    def _augment(self, rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
        crop = np.rot90(crop, rng.integers(4))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        # Mild colour jitter: a gain per channel and one brightness offset.
        gain = 1 + rng.uniform(-self.jitter, self.jitter, 3)
        offset = rng.uniform(-self.jitter, self.jitter) * 128
        return np.clip(crop * gain + offset, 0, 255).round().astype(np.uint8)


def training_sampler(data_dirs: list[Path], crop: int, slides=TRAIN_SLIDES) -> CropSampler:
    lc_root = _find(data_dirs, LC25000)
    lc = lc25000_images(lc_root, crop) if lc_root else None
    levels = []
    for relative in slides:
        path = _find(data_dirs, relative)
        if path:
            levels += pyramid(read_slide_level0(path), min_side=max(crop, 256))
    if lc is None and not levels:
        raise InputError(f"no training data ({LC25000}, {', '.join(slides)}) under "
                         + ", ".join(map(str, data_dirs)))
    return CropSampler(lc, levels, crop)


def _val_coords(path: Path) -> list[tuple[int, int]]:
    """Level-0 (x, y) corners. The notes call the file "x y", but its columns are row then
    column: read as "x y", 14 of the 48 tiles are glass; read as "y x", all 48 are tissue."""
    rows = [tuple(map(int, line.split())) for line in path.read_text().splitlines() if line.strip()]
    return [(x, y) for y, x in rows]


def validation_tiles(data_dirs: list[Path], coords_file: Path = DEFAULT_VAL_COORDS,
                     ) -> dict[str, list[np.ndarray]]:
    """{'tcga48': tiles, 'fixtures': tiles}: 256 px tiles with more than 50% tissue."""
    import openslide

    sets: dict[str, list[np.ndarray]] = {}
    slide_path = _find(data_dirs, VAL_SLIDE)
    if slide_path and coords_file.exists():
        with openslide.OpenSlide(str(slide_path)) as slide:
            tiles = [_rgb(slide.read_region(xy, 0, (VAL_TILE, VAL_TILE))) for xy in _val_coords(coords_file)]
        glass = sum(tissue_fraction(t) <= MIN_TISSUE for t in tiles)
        if glass:
            raise InputError(f"{glass} of the validation tiles in {coords_file} are not tissue")
        sets["tcga48"] = tiles
    fixtures = _find(data_dirs, VAL_FIXTURES)
    if fixtures:
        tiles = []
        for f in sorted(fixtures.glob("*.png")):
            if any(word in f.name for word in NOT_HE):
                continue
            with Image.open(f) as im:
                image = _rgb(im)
            for y in range(0, image.shape[0] - VAL_TILE + 1, VAL_TILE):
                for x in range(0, image.shape[1] - VAL_TILE + 1, VAL_TILE):
                    tile = image[y : y + VAL_TILE, x : x + VAL_TILE]
                    if tissue_fraction(tile) > MIN_TISSUE:
                        tiles.append(np.ascontiguousarray(tile))
        sets["fixtures"] = tiles
    return {name: tiles for name, tiles in sets.items() if tiles}
