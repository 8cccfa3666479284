"""The Ray table of docs/performance.md ("Engines"): whole `pixelprune compress` runs, local vs `--engine ray`, Arrow vs Parquet shards.

Input: the 10 bench files 8 times over as one 80-row image Parquet file,
shards of 10 images. Each cell is a separate process (`python -m
pixelprune_cli`, `-j 2`), so Ray's start-up and shutdown are in its time; the
four cells run in interleaved rounds. Prints min-max seconds and images/s.

    .venv/bin/python bench/engines.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inputs import make_inputs
from parquet_output import OUT, RAY_COPIES, RAY_SHARD, ray_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = make_inputs()["files"]
    source = ray_input(files)
    n = RAY_COPIES * len(files)
    cells = [(engine, fmt) for engine in ("local", "ray") for fmt in ("arrow", "parquet")]
    seconds: dict[tuple, list[float]] = {cell: [] for cell in cells}
    for r in range(args.rounds):
        for engine, fmt in cells[r % len(cells):] + cells[:r % len(cells)]:
            target = f"{OUT / f'engines-{engine}-{fmt}'}/"  # the trailing slash makes it a shard folder
            cmd = [sys.executable, "-m", "pixelprune_cli", "compress", str(source), "-o", target, "--engine", engine,
                   "--shard-format", fmt, "--shard-size", str(RAY_SHARD), "-j", "2", "--no-progress", "--table", "none",
                   "--overwrite"]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            seconds[(engine, fmt)].append(time.perf_counter() - start)
            print(f"  {engine} {fmt}: {seconds[(engine, fmt)][-1]:.1f} s", file=sys.stderr, flush=True)
    print(f"{n} images, shards of {RAY_SHARD}, -j 2, {args.rounds} rounds (min-max); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end")
    print("| engine, 2 CPUs | Arrow shards | Parquet shards |\n|---|---|---|")
    for engine in ("local", "ray"):
        line = ["local `--workers 2`" if engine == "local" else "`--engine ray`"]
        for fmt in ("arrow", "parquet"):
            lo, hi = min(seconds[(engine, fmt)]), max(seconds[(engine, fmt)])
            line.append(f"{lo:.1f}–{hi:.1f} s ({n / hi:.1f}–{n / lo:.1f} images/s)")
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
