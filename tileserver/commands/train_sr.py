"""`tileserver train sr` (train or resume an enhancer run) and `tileserver train sr-export`."""
from __future__ import annotations

from pathlib import Path

from tileserver.train.codec_data import DEFAULT_DATA

# Training defaults live in SRConfig; argparse only overrides what is given.
_OPTIONS = {
    "--blocks": dict(type=int, help="RRDB blocks"),
    "--features": dict(type=int, help="feature width"), "--growth": dict(type=int, help="dense growth"),
    "--crop": dict(type=int, help="high-res crop side, a multiple of 4"),
    "--batch": dict(type=int), "--steps": dict(type=int, help="step to reach (total, not more)"),
    "--lr": dict(type=float),
    "--lr-storages": dict(nargs="+", help="low-res storages drawn per training crop"),
    "--val-storages": dict(nargs="+", help="low-res storages the validation restores from"),
    "--threads": dict(type=int), "--seed": dict(type=int),
    "--checkpoint-minutes": dict(type=float), "--val-minutes": dict(type=float, help="0: none"),
    "--log-every": dict(type=int),
    "--max-minutes": dict(type=float, help="stop with a checkpoint after this long"),
}


def add_parser(trainers) -> None:
    parser = trainers.add_parser("sr", help="train or resume an SR4 enhancer (RRDBNet x4) run")
    parser.add_argument("--data", nargs="+", default=[str(DEFAULT_DATA)], metavar="DIR",
                        help=f"data roots holding patches/ and slides/ (default {DEFAULT_DATA})")
    parser.add_argument("--out", required=True, type=Path, metavar="RUN_DIR")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    for flag, kwargs in _OPTIONS.items():
        parser.add_argument(flag, default=None, **kwargs)
    parser.set_defaults(func=run)

    export = trainers.add_parser("sr-export", help="export an enhancer run to models/NAME.pt")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export.add_argument("--name", required=True, help="model name: models/NAME.pt")
    export.add_argument("--models", type=Path, default=None, help="models directory")
    export.set_defaults(func=run_export)


def run(args) -> int:
    from tileserver.train.sr_trainer import SRConfig, SRTrainer

    given = {flag.lstrip("-").replace("-", "_") for flag in _OPTIONS}
    values = {k: getattr(args, k) for k in given if getattr(args, k) is not None}
    SRTrainer(SRConfig(data=args.data, **values), args.out, resume=args.resume).run()
    return 0


def run_export(args) -> int:
    from tileserver.codecs.learned_models import model_path
    from tileserver.train.sr_trainer import SRConfig, SRTrainer

    path = model_path(args.name, args.models)
    sha256 = SRTrainer(SRConfig(), args.run_dir, resume=True).export(path)
    print(f"{path} sha256 {sha256}")
    return 0
