"""`tileserver info FILE [--json]`: metadata, levels, codec counts and sizes of our files."""
from __future__ import annotations

import json
from dataclasses import asdict

from tileserver.format.reader import NeuralTiff


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("info", help="describe a neural-tile TIFF")
    parser.add_argument("file")
    parser.add_argument("--json", action="store_true", help="print the same as JSON")
    parser.set_defaults(func=run)


def describe(slide: NeuralTiff) -> dict:
    meta = asdict(slide.metadata)
    file_bytes = slide.stat.st_size
    reference = slide.metadata.stats.get("reference_jpeg90_bytes")
    meta["file"] = {
        "path": str(slide.path),
        "bytes": file_bytes,
        "vs_source": file_bytes / slide.metadata.source["bytes"] if slide.metadata.source.get("bytes") else None,
        "vs_jpeg90_reference": file_bytes / reference if reference else None,
    }
    return meta


def run(args) -> int:
    with NeuralTiff(args.file) as slide:
        doc = describe(slide)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    meta, stats = doc, doc["stats"]
    print(f"{doc['file']['path']}: {meta['format']} v{meta['format_version']}, "
          f"{doc['file']['bytes'] / 1e6:.2f} MB, tile {meta['tile_size']} px")
    print(f"source     {meta['source'].get('name')} ({meta['source'].get('vendor')}, "
          f"{meta['source'].get('bytes', 0) / 1e6:.2f} MB, sha256 {meta['source'].get('sha256', '')[:16]}...)")
    mpp = meta["mpp"]
    print(f"mpp        {'%.4f x %.4f' % tuple(mpp) if mpp else 'unknown'}   "
          f"objective {meta['objective_power'] or 'unknown'}   background {tuple(meta['background'])}")
    for index, level in enumerate(meta["levels"]):
        print(f"level {index:<3}  {level['width']} x {level['height']}  downsample {level['downsample']:g}")
    print(f"tiles      {stats.get('tiles')} ({stats.get('glass_tiles')} glass, "
          f"{stats.get('fallback_tiles', 0)} guard fallbacks)")
    for label, count in sorted(stats.get("tiles_per_codec", {}).items()):
        print(f"  {label:<20} {count}")
    adaptive = meta["encoder"].get("adaptive")
    if adaptive:
        print(f"adaptive   λ {adaptive['lmbda']}, policy {adaptive['policy']}, keep {adaptive['keep']}: "
              f"{stats.get('compressed_tiles')} tiles compressed (SR4); P(compress) per tile in page 'decisions'")
    for entry in meta["codecs"]:
        print(f"codec      {entry}")
    if doc["file"]["vs_jpeg90_reference"]:
        print(f"size       {doc['file']['vs_source']:.1%} of source, "
              f"{doc['file']['vs_jpeg90_reference']:.1%} of a JPEG q90 pyramid with glass intact")
    print(f"pages      {', '.join(meta['pages']) or 'none'}")
    return 0
