"""Under `torchrun --nproc_per_node 2` (gloo, CPU), the ranks read disjoint rows of a cache, every row once an epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="the train extra (torch, datasets) is not installed")
pytest.importorskip("datasets", reason="the train extra (datasets) is not installed")

from conftest import ROOT
from test_training_cache import compress, image_table

TESTS = ROOT / "tests"


def test_two_ranks_read_disjoint_rows_and_together_every_row_once_per_epoch(tmp_path):
    cache = compress(image_table(tmp_path / "data.parquet"), f"{tmp_path}/cache/")
    out = tmp_path / "ranks.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(TESTS / "training_ranks.py"), cache, str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    every = sorted(f"data.parquet#{k}" for k in range(5))
    epochs = json.loads(out.read_text())
    assert len(epochs) == 2
    for ranks in epochs:
        first, second = ranks
        assert first and second
        assert not set(first) & set(second)
        assert sorted(first + second) == every
    assert epochs[0] != epochs[1]  # each epoch is shuffled anew
