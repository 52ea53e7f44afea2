"""IIIF Image API level 2 compliance, 2.0 and 3.0, proven by the official validator
(PyPI iiif-validator) run offline against a real server on 127.0.0.1.

The validator's test image (10x10 squares of its own colour table, 1000x1000) is generated
here and stored in our format with JPEG-XL at distance 0, then served like any slide.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tileserver.encode.encoder import EncodeSettings, encode_slide
from tileserver.server.app import create_app

from .live_server import serve

validator = pytest.importorskip("iiif_validator.validator")

IDENTIFIER = "67352ccc-d1b0-11e1-89ae-279075081939"
LEVEL = 2


def validator_image() -> np.ndarray:
    """Square (x, y), 100 px each, has colour colorInfo[x][y], as the validator checks."""
    colours = validator.ValidationInfo().colorInfo
    image = np.zeros((1000, 1000, 3), np.uint8)
    for x in range(10):
        for y in range(10):
            image[y * 100 : (y + 1) * 100, x * 100 : (x + 1) * 100] = colours[x][y]
    return image


@pytest.fixture(scope="module")
def validator_server(tmp_path_factory):
    work = tmp_path_factory.mktemp("iiif-validator")
    source = work / "validator.png"
    Image.fromarray(validator_image()).save(source)
    root = work / "slides"
    root.mkdir()
    settings = EncodeSettings(codecs=["jxl:0"], fallback="jxl:0", glass="keep")
    encode_slide(source, root / IDENTIFIER, settings, progress=False)
    with serve(create_app(root, device="cpu", cache_mb=64)) as url:
        yield url


def run_validator(url: str, version: str) -> tuple[int, list[str]]:
    """Every validator test of ``version`` up to LEVEL, as the iiif-validate.py script runs
    them; returns how many ran and the failures."""
    host = url.removeprefix("http://")
    prefix = f"iiif/{version[0]}"
    tests = validator.TestSuite(validator.ValidationInfo()).list_tests(version)
    failures = []
    ran = 0
    for name, info in sorted(tests.items()):
        if info["level"] > LEVEL:
            continue
        ran += 1
        result = validator.ImageAPI(IDENTIFIER, host, prefix, "http", "", version, debug=False)
        try:
            validator.TestSuite(validator.ValidationInfo()).run_test(name, result)
        except Exception as exc:  # the validator's own way of failing, as in its script
            failures.append(f"{name}: {type(exc).__name__}: {exc} (urls {result.urls})")
            continue
        if result.exception:
            e = result.exception
            failures.append(f"{name}: got {e.got!r}, expected {e.expected!r}: {e.message} (urls {result.urls})")
    return ran, failures


@pytest.mark.parametrize("version", ["2.0", "3.0"])
def test_level2_compliance(validator_server, version):
    ran, failures = run_validator(validator_server, version)
    assert ran >= 25, f"only {ran} validator tests ran"
    assert not failures, "\n".join(failures)
