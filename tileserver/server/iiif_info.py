"""IIIF info.json documents (Image API 3.0 and 2.1) for a slide: tiles with contiguous
power-of-two scaleFactors (the stored levels) and the matching sizes."""
from __future__ import annotations

from tileserver.server.iiif_params import MAX_AREA, MAX_SIDE
from tileserver.slides.tiled import TiledSlide

CONTEXT = {3: "http://iiif.io/api/image/3/context.json", 2: "http://iiif.io/api/image/2/context.json"}
PROFILE_LINK = {3: "http://iiif.io/api/image/3/level2.json", 2: "http://iiif.io/api/image/2/level2.json"}
EXTRA_FORMATS = ["webp", "tif"]
EXTRA_QUALITIES = ["color", "gray", "bitonal"]
FEATURES = ["baseUriRedirect", "cors", "jsonldMediaType", "mirroring", "profileLinkHeader",
            "regionByPct", "regionByPx", "regionSquare", "rotationArbitrary", "rotationBy90s",
            "sizeByConfinedWh", "sizeByH", "sizeByPct", "sizeByW", "sizeByWh"]


def _image(slide: TiledSlide) -> dict:
    """Size, sizes and tiles: the part both versions share."""
    pyramid = slide.pyramid
    sizes = []
    for level in reversed(range(pyramid.level_count)):
        w, h = pyramid.level_size(level)
        if w <= MAX_SIDE and h <= MAX_SIDE and w * h <= MAX_AREA:
            sizes.append({"width": w, "height": h})
    tiles = [{
        "width": pyramid.tile_size,
        "height": pyramid.tile_size,
        "scaleFactors": [2**k for k in range(pyramid.level_count)],
    }]
    return {"width": pyramid.width, "height": pyramid.height, "sizes": sizes, "tiles": tiles}


def info_v3(slide: TiledSlide, service_id: str) -> dict:
    return {
        "@context": CONTEXT[3],
        "id": service_id,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": "level2",
        **_image(slide),
        "maxWidth": MAX_SIDE,
        "maxHeight": MAX_SIDE,
        "maxArea": MAX_AREA,
        "extraFormats": EXTRA_FORMATS,
        "extraQualities": EXTRA_QUALITIES,
        "extraFeatures": FEATURES + ["sizeUpscaling"],
    }


def info_v2(slide: TiledSlide, service_id: str) -> dict:
    return {
        "@context": CONTEXT[2],
        "@id": service_id,
        "protocol": "http://iiif.io/api/image",
        **_image(slide),
        "profile": [PROFILE_LINK[2], {
            "formats": ["jpg", "png"] + EXTRA_FORMATS,
            "qualities": ["default"] + EXTRA_QUALITIES,
            "supports": FEATURES,
            "maxWidth": MAX_SIDE,
            "maxHeight": MAX_SIDE,
            "maxArea": MAX_AREA,
        }],
    }
