"""docs/api.md is a tutorial whose code runs: its Python blocks, in order, as one session
with no file behind it (as a notebook runs them), so the classes it registers reach the
worker processes pickled."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_tutorial_runs_and_prints_what_it_says(tmp_path, binarized_mnist_dir):
    code = "\n\n".join(blocks())
    assert len(blocks()) >= 8 and "register_method" in code and "sweep_to" in code
    env = {**os.environ, "VLAE_BENCH_DATA": str(binarized_mnist_dir.parent),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    done = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout
    assert "64 test/00000 (28, 28) True" in out  # the items
    assert "zlib-packed" in out and "ink_recall" in out
    # a model without compress states its rate; one with it is a real codec beside its bound
    assert "('tiny-vae', 'kl')" in out and "('tiny-vae', 'coded')" not in out
    assert "('beta-vae', 'coded'), ('beta-vae', 'kl')" in out
    assert "['tiny-beta0.5-s1', 'tiny-beta1-s1', 'zlib']" in out  # the spec's jobs
    assert "[] " in out  # no job of the sweep failed
