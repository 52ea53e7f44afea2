#!/usr/bin/env bash
# Install tileserver with its test tools. torch/torchvision are pinned in pyproject.toml.
# Debian's chromium (browser tests), redis-server (shared-cache tests) and nginx (the compose
# balancer's config check and the replicas benchmark) come from apt when this runs as root on
# Debian; without them those tests skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null) \
        || echo "warning: apt-get could not install ${missing[*]}; the tests that need them will skip" >&2
fi
python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
