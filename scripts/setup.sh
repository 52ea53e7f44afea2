#!/usr/bin/env bash
# Install tileserver with its test tools. torch/torchvision are pinned in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
