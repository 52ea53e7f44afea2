"""`tileserver train agent`: the Compression Decision Agent (REINFORCE), written to models/."""
from __future__ import annotations

import argparse
from pathlib import Path

from tileserver.train.codec_data import DEFAULT_DATA

# Training defaults live in AgentConfig; argparse only overrides what is given.
_OPTIONS = {
    "--sr4": dict(help="the SR4 codec spec whose restorations are judged (default: sr4)"),
    "--keep": dict(help="the keep codec spec the gain is measured against (default: jpeg:90)"),
    "--tau": dict(type=float, help="nuclei Dice below which compressing earns -1"),
    "--width": dict(type=int), "--steps": dict(type=int), "--batch": dict(type=int),
    "--lr": dict(type=float), "--baseline-lr": dict(type=float, help="learning rate of the reward baseline"),
    "--entropy": dict(type=float, help="entropy bonus weight"),
    "--balance": dict(action=argparse.BooleanOptionalAction,
                      help="draw training tiles evenly over nuclei-Dice bins (default: on)"),
    "--lc-patches": dict(type=int, help="LC25000 patches added to the slide tiles"),
    "--threads": dict(type=int), "--seed": dict(type=int),
}


def add_parser(trainers) -> None:
    parser = trainers.add_parser("agent", help="train the compression decision agent")
    parser.add_argument("--data", nargs="+", default=[str(DEFAULT_DATA)], metavar="DIR",
                        help=f"data roots holding patches/ and slides/ (default {DEFAULT_DATA})")
    parser.add_argument("--out", required=True, type=Path, metavar="RUN_DIR",
                        help="run directory: reward tables (reused when present) and val.csv")
    parser.add_argument("--name", required=True, help="model name: models/NAME.pt")
    parser.add_argument("--models", type=Path, default=None, help="models directory")
    for flag, kwargs in _OPTIONS.items():
        parser.add_argument(flag, default=None, **kwargs)
    parser.set_defaults(func=run)


def run(args) -> int:
    from tileserver.codecs.learned_models import model_path
    from tileserver.train.agent_trainer import AgentConfig, train_agent

    keys = [flag.lstrip("-").replace("-", "_") for flag in _OPTIONS]
    config = AgentConfig(data=args.data, **{k: getattr(args, k) for k in keys if getattr(args, k) is not None})
    path = model_path(args.name, args.models)
    sha256 = train_agent(config, args.out, path)
    print(f"{path} sha256 {sha256}")
    return 0
