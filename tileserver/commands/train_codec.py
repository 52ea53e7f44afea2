"""`tileserver train codec` (train or resume a run) and `tileserver train codec-export`."""
from __future__ import annotations

from pathlib import Path

from tileserver.train.codec_data import DEFAULT_DATA

# Training defaults live in TrainConfig; argparse only overrides what is given.
_OPTIONS = {
    "--arch": dict(choices=["mbt2018-mean", "bmshj2018-hyperprior", "mbt2018-mean-light-hs"]),
    "--N": dict(type=int), "--M": dict(type=int),
    "--N-s": dict(type=int, help="g_s's own width (mbt2018-mean-light-hs; default N)"),
    "--N-a": dict(type=int, help="g_a's own width, the encoder's (mbt2018-mean-light-hs; default N)"),
    "--lmbda": dict(type=float, help="loss = lmbda * 255^2 * MSE + ssim_weight * (1 - SSIM) + bpp"),
    "--ssim-weight": dict(type=float, help="weight of the SSIM term (project's SSIM convention)"),
    "--lmbda-start": dict(type=float, help="λ curriculum: start here ..."),
    "--lmbda-ramp": dict(type=int, help="... and reach --lmbda after this many steps"),
    "--crop": dict(type=int, help="crop side, a multiple of 64"),
    "--batch": dict(type=int), "--steps": dict(type=int, help="step to reach (total, not more)"),
    "--lr": dict(type=float), "--warmup": dict(type=int),
    "--decay-from": dict(type=float, help="cosine lr decay over the steps after this fraction"),
    "--lr-min": dict(type=float), "--aux-lr": dict(type=float),
    "--threads": dict(type=int), "--seed": dict(type=int),
    "--precision": dict(choices=["fp32", "bf16"],
                        help="bf16: g_a and g_s under bf16 autocast (2x faster a step on a CPU with AMX)"),
    "--quantization": dict(choices=["noise", "rounded"],
                           help="what g_s and h_s see in training: the latents plus uniform noise "
                                "(CompressAI's forward) or rounded as in decoding (straight-through); "
                                "the rate is the noisy latents' either way"),
    "--init": dict(help="start from these weights (run checkpoint or models/*.pt): fine-tuning"),
    "--fresh": dict(nargs="+", metavar="MODULE",
                    help="modules --init leaves at their initialisation (e.g. h_s: a new hyper-synthesis)"),
    "--train-only": dict(nargs="+", metavar="MODULE", help="train these modules, freeze the rest"),
    "--grow": dict(nargs="+", metavar="MODULE",
                   help="widen these modules of --init to this net's width (g_s with --N-s, g_a with --N-a): "
                        "the output is unchanged at the start, the new channels learn"),
    "--checkpoint-minutes": dict(type=float), "--val-minutes": dict(type=float, help="0: none"),
    "--log-every": dict(type=int),
    "--max-minutes": dict(type=float, help="stop with a checkpoint after this long"),
}


def add_parser(trainers) -> None:
    parser = trainers.add_parser("codec", help="train or resume a learned-codec run")
    parser.add_argument("--data", nargs="+", default=[str(DEFAULT_DATA)], metavar="DIR",
                        help=f"data roots holding patches/ and slides/ (default {DEFAULT_DATA})")
    parser.add_argument("--out", required=True, type=Path, metavar="RUN_DIR")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    for flag, kwargs in _OPTIONS.items():
        parser.add_argument(flag, default=None, **kwargs)
    parser.set_defaults(func=run)

    export = trainers.add_parser("codec-export", help="export a run's weights to models/NAME.pt")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export.add_argument("--name", required=True, help="model name: models/NAME.pt and NAME.md")
    export.add_argument("--models", type=Path, default=None, help="models directory")
    export.add_argument("--notes", default="", help="a line for the model card")
    export.set_defaults(func=run_export)


def run(args) -> int:
    from tileserver.train.codec_trainer import CodecTrainer, TrainConfig

    given = {flag.lstrip("-").replace("-", "_"): getattr(args, flag.lstrip("-").replace("-", "_"))
             for flag in _OPTIONS}
    given = {k: v for k, v in given.items() if v is not None}
    config = TrainConfig(data=args.data, **given)
    CodecTrainer(config, args.out, resume=args.resume, overrides={"data", *given}).run()
    return 0


def run_export(args) -> int:
    from tileserver.train.codec_export import export_run

    path, sha256 = export_run(args.run_dir, args.name, args.models, args.notes)
    print(f"{path} sha256 {sha256}")
    return 0
