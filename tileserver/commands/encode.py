"""`tileserver encode INPUT -o OUTPUT`: source slide -> tileserver-ntiff pyramid."""
from __future__ import annotations

import os

from tileserver.encode.adaptive import DEFAULT_POLICY
from tileserver.encode.encoder import GLASS_MODES, EncodeSettings, EncodeSummary, encode_slide
from tileserver.encode.rate import DEFAULT_FALLBACK, DEFAULT_FLOOR


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("encode", help="encode a slide into a neural-tile TIFF pyramid")
    parser.add_argument("input", help="source slide: SVS, TIFF, OME-TIFF, DICOM, NDPI, MRXS, PNG, JPEG")
    parser.add_argument("-o", "--output", required=True, help="output .tiff path (written atomically)")
    add_encoding_options(parser)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def add_encoding_options(parser) -> None:
    """The options shared by `encode` and `encode-batch`."""
    parser.add_argument(
        "--codec",
        default=DEFAULT_FALLBACK,
        help="codec spec, or a comma-separated list of candidates for rate control: "
        "jpeg:90, jxl:1.0, learned:MODEL, sr4; or adaptive:λ (λ 0.1 to 1.0, default 0.5): "
        "the decision agent keeps each tile (--keep-codec) or compresses it as SR4 (default %(default)s)",
    )
    parser.add_argument("--keep-codec", default=None, metavar="SPEC[,SPEC...]",
                        help="with --codec adaptive:λ, the codec of kept tiles, or candidates for rate "
                        "control (default jpeg:90); the guard options below apply to kept tiles only")
    parser.add_argument("--policy", default=DEFAULT_POLICY,
                        help="with --codec adaptive:λ, the decision policy models/NAME.pt (default %(default)s)")
    parser.add_argument("--tile-size", type=int, default=256, choices=(240, 256, 512))
    parser.add_argument("--glass", default="zero", choices=GLASS_MODES,
                        help="zero: glass tiles stored as zero bytes and glass pixels whitened; "
                        "white: glass pixels whitened only; keep: tiles stored as scanned")
    parser.add_argument("--target-ssim", type=float, default=None,
                        help="per tile, the smallest candidate at or above this SSIM")
    parser.add_argument("--floor", type=float, default=DEFAULT_FLOOR,
                        help="a candidate below this SSIM is never written (default %(default)s)")
    parser.add_argument("--fallback", default=DEFAULT_FALLBACK,
                        help="written when no candidate passes the guard (default %(default)s)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="where learned codecs run while measuring")


def settings_from(args, workers: int) -> EncodeSettings:
    return EncodeSettings(
        codecs=[spec.strip() for spec in args.codec.split(",") if spec.strip()],
        tile_size=args.tile_size,
        glass=args.glass,
        workers=workers,
        target_ssim=args.target_ssim,
        floor=args.floor,
        fallback=args.fallback,
        device=args.device,
        keep_codec=args.keep_codec,
        policy=args.policy,
    )


def run(args) -> int:
    summary = encode_slide(args.input, args.output, settings_from(args, args.workers), progress=not args.quiet)
    print(format_summary(summary))
    return 0


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def format_summary(s: EncodeSummary) -> str:
    rows = [
        ("output", str(s.output)),
        ("output size", _mb(s.output_bytes)),
        ("source size", f"{_mb(s.source_bytes)} (output is {s.output_bytes / s.source_bytes:.1%})"),
        ("JPEG q90 pyramid, glass intact",
         f"{_mb(s.reference_jpeg90_bytes)} (output is {s.output_bytes / max(1, s.reference_jpeg90_bytes):.1%})"),
        ("glass tiles", f"{s.glass_tiles} of {s.tiles} ({s.glass_tiles / s.tiles:.1%})"),
        *[(f"tiles {label}", str(n)) for label, n in sorted(s.tiles_per_codec.items())],
        ("tiles written by the guard's fallback", str(s.fallback_tiles)),
        *([("tiles compressed by the agent (SR4)",
            f"{s.compressed_tiles} of {s.tiles - s.glass_tiles} tissue tiles "
            f"({s.compressed_tiles / max(1, s.tiles - s.glass_tiles):.1%})")] if s.compressed_tiles is not None else []),
        ("time", f"{s.seconds:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
