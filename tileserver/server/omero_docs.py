"""The JSON documents of the OMERO-web subset: API discovery, server list, and imgData.

``base`` is the absolute URL of the mount (scheme, host, prefix), without a trailing slash.
Every slide is one RGB uint8 plane (z = t = 1, three channels R, G, B), with the pyramid's
power-of-two levels as OMERO's zoom levels.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from tileserver.slides.numeric_ids import numeric_id
from tileserver.slides.tiled import TiledSlide

API_VERSION = "0"
# url:* key -> path under {base}/api/v0/; collections end with "/"
LINKS = {
    "experimenters": "m/experimenters/",
    "experimentergroups": "m/experimentergroups/",
    "projects": "m/projects/",
    "datasets": "m/datasets/",
    "images": "m/images/",
    "screens": "m/screens/",
    "plates": "m/plates/",
    "token": "token/",
    "servers": "servers/",
    "login": "login/",
}
# collections this server has none of; answered (empty) so that clients which probe them to
# tell whether anonymous browsing is allowed see that it is, and find no ROIs rather than an
# error when a slide is added to a QuPath project. Images are not listed.
EMPTY_COLLECTIONS = ("experimenters", "experimentergroups", "projects", "datasets", "screens", "plates", "rois")
PAGE_LIMIT, PAGE_MAX_LIMIT = 200, 500  # OMERO.web's defaults
SERVER_ID = 1
_CHANNELS = (("R", "FF0000"), ("G", "00FF00"), ("B", "0000FF"))


def qupath_path(prefix: str, slide_id: str) -> str:
    """The path QuPath opens a slide by (File > Open URI, with the server's scheme and host)."""
    return f"{prefix}/webclient/?show=image-{numeric_id(slide_id)}"


def api_versions(base: str) -> dict:
    return {"data": [{"version": API_VERSION, "url:base": f"{base}/api/v{API_VERSION}/"}]}


def api_links(base: str) -> dict:
    root = f"{base}/api/v{API_VERSION}/"
    return {f"url:{key}": root + path for key, path in LINKS.items()}


def empty_collection() -> dict:
    """A paginated OMERO JSON API list with nothing in it."""
    return {"data": [], "meta": {"offset": 0, "limit": PAGE_LIMIT, "maxLimit": PAGE_MAX_LIMIT, "totalCount": 0}}


def servers(base: str) -> dict:
    """The one 'OMERO server': this web server's host and port."""
    parts = urlsplit(base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"data": [{"id": SERVER_ID, "host": parts.hostname or "", "port": port, "server": "tileserver"}]}


def image_data(number: int, slide_id: str, slide: TiledSlide) -> dict:
    """webgateway/imgData: size, pixel type, channels, pixel size, tiles and zoom levels."""
    p = slide.pyramid
    mpp = slide.mpp
    return {
        "id": number,
        "meta": {"imageId": number, "imageName": slide_id, "pixelsType": "uint8"},
        "size": {"width": p.width, "height": p.height, "z": 1, "t": 1, "c": len(_CHANNELS)},
        "pixel_size": {"x": mpp[0], "y": mpp[1], "z": None} if mpp else {"x": None, "y": None, "z": None},
        "tiles": True,
        "tile_size": {"width": p.tile_size, "height": p.tile_size},
        "levels": p.level_count,
        "zoomLevelScaling": {str(level): 1 / 2**level for level in range(p.level_count)},
        "interpolate": True,
        "rdefs": {"model": "color", "projection": "normal", "defaultZ": 0, "defaultT": 0, "invertAxis": False},
        "channels": [
            {
                "label": label,
                "color": color,
                "active": True,
                "window": {"min": 0, "max": 255, "start": 0, "end": 255},
                "family": "linear",
                "coefficient": 1.0,
                "inverted": False,
                "reverseIntensity": False,
            }
            for label, color in _CHANNELS
        ],
    }
