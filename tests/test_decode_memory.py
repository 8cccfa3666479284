"""Memory with several workers: the allocator setting that keeps -j2 at -j1's peak (bench/memory.py --huge measures it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BLOCK_SIZE = "import pixelprune_cli.coding.preprocess; from PIL import Image; print(Image.core.get_block_size())"


def block_size(**env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != "PILLOW_BLOCK_SIZE"}
    out = subprocess.run([sys.executable, "-c", BLOCK_SIZE], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


def test_large_images_are_allocated_in_blocks_glibc_always_maps_and_gives_back():
    """glibc's dynamic mmap threshold never rises past 32 MiB: blocks that size or more never stay in a thread's arena."""
    assert block_size() >= 32 << 20


@pytest.mark.parametrize("chosen", ["4m", "16m"])
def test_a_block_size_the_caller_chose_is_kept(chosen):
    assert block_size(PILLOW_BLOCK_SIZE=chosen) == int(chosen[:-1]) << 20
