"""The `tileserver` command's process set-up."""
from __future__ import annotations

import os
import subprocess
import sys

CHECK = """
import os, sys
from tileserver import cli
assert "torch" not in sys.modules, "torch loaded before the command set its OpenMP policy"
try:
    cli.main(["info", "--help"])
except SystemExit:
    pass
assert "torch" in sys.modules
print(os.environ["OMP_WAIT_POLICY"])
"""


def test_openmp_threads_wait_passively_unless_told_otherwise():
    """Spinning OpenMP threads slowed training 5-20x beside other jobs: the command sets the
    passive policy before torch (and its OpenMP runtime) loads, and leaves a user's choice."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == "PASSIVE"
    run = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert run.stdout.split()[-1] == "ACTIVE"
