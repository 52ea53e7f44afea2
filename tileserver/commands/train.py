"""`tileserver train TRAINER ...`: one subcommand per trainer.

Each module listed here (in tileserver.commands) defines add_parser(subparsers), adding its
trainer's subcommand(s) with func=run. A new trainer is one more line in TRAINERS.
"""
from __future__ import annotations

import importlib

TRAINERS = [
    "train_codec",
    "train_sr",
    "train_agent",
]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train the learned codec and other models")
    trainers = parser.add_subparsers(dest="trainer", required=True, metavar="TRAINER")
    for name in TRAINERS:
        importlib.import_module(f"tileserver.commands.{name}").add_parser(trainers)
