"""`tileserver encode-batch SOURCE_DIR|MANIFEST.csv -o OUT_DIR`: an archive on Dask distributed."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from tileserver.commands.encode import add_encoding_options, settings_from
from tileserver.encode.batch import Progress, collect_items, iter_summary, run_batch, write_report
from tileserver.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("encode-batch", help="encode many slides on a Dask cluster (restartable)")
    parser.add_argument("source", help="a directory of slides, or a manifest CSV with a 'source' column")
    parser.add_argument("-o", "--output", required=True, help="output directory (mirrors the source tree)")
    add_encoding_options(parser)
    parser.add_argument("--dask", metavar="tcp://SCHEDULER:8786", default=None,
                        help="a Dask scheduler; without it a local cluster is started")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="local cluster size (one slide per worker process at a time)")
    parser.add_argument("--report", default=None, help="CSV report path (default OUT_DIR/encode-report.csv)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from distributed import Client, LocalCluster

    out_dir = Path(args.output)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out_dir}: {exc.strerror}") from None
    items = collect_items(Path(args.source), out_dir)
    if not items:
        raise InputError(f"{args.source}: no slides found")
    settings = settings_from(args, workers=1)
    if args.dask:
        client = Client(args.dask)
    else:
        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                     dashboard_address=None))
    with client:
        rows = run_batch(items, settings, client, Progress(items, lambda line: print(line, file=sys.stderr)))
    report = Path(args.report) if args.report else out_dir / "encode-report.csv"
    write_report(rows, report)
    print(", ".join(iter_summary(rows)) + f"; report: {report}")
    return 1 if any(row["status"] == "failed" for row in rows) else 0
