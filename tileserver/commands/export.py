"""`tileserver export IN OUT`: our format -> a standard JPEG tiled TIFF for OpenSlide and QuPath."""
from __future__ import annotations

from tileserver.encode.export import export_jpeg_tiff


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write a standard JPEG tiled TIFF that OpenSlide-based tools (QuPath) open"
    )
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality for re-encoded tiles")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.set_defaults(func=run)


def run(args) -> int:
    path = export_jpeg_tiff(args.input, args.output, args.quality, args.device)
    print(f"wrote {path}")
    return 0
