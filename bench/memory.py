"""Peak memory of `pixelprune compress` against the number of images: memory stays bounded as inputs grow.

Generates two HF-style image Parquet files (2,000 and 20,000 rows by default:
256x256 PNGs, each a flat page with a noisy block somewhere, so every image
differs and the coder both keeps and drops tokens), compresses each in a
subprocess and reads that subprocess's peak RSS with os.wait4. wait4 reports
the child and every descendant it waited for; pixelprune works on threads,
so that is the whole run. RUSAGE_CHILDREN is not used because it is a maximum
over every child so far, which would hide a smaller second run.

    python bench/memory.py                       # 2,000 vs 20,000, --workers 2
    python bench/memory.py --small 500 --large 5000 --json
    python bench/memory.py --huge 2               # 8192x8192 RGBA PNGs, --workers 1 and 2

Prints both peaks and whether larger <= smaller * 1.15 + 20 MB (with --huge:
whether the peak with --workers 2 is at most 1.2x the peak with --workers 1).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

SIDE = 256
TOLERANCE, SLACK_MB = 1.15, 20
HUGE_WORKERS_RATIO = 1.2  # --huge: peak with two workers against one


def image_bytes(rng: np.random.Generator) -> bytes:
    """A 256x256 PNG: flat background of a random grey, one noisy block at a random place."""
    img = np.full((SIDE, SIDE, 3), int(rng.integers(120, 250)), dtype=np.uint8)
    h, w = (int(v) for v in rng.integers(16, 96, size=2))
    y, x = int(rng.integers(0, SIDE - h)), int(rng.integers(0, SIDE - w))
    img[y:y + h, x:x + w] = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(img).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def write_parquet(path: Path, rows: int, seed: int = 0, group: int = 1000) -> None:
    """An HF `datasets`-style table (image struct<bytes, path>), written a row group at a time."""
    rng = np.random.default_rng(seed)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    meta = {b"huggingface": json.dumps({"info": {"features": {"image": {"_type": "Image"}}}}).encode()}
    schema = pa.schema([pa.field("image", image_type)], metadata=meta)
    with pq.ParquetWriter(str(path), schema) as writer:
        for start in range(0, rows, group):
            cells = [{"bytes": image_bytes(rng), "path": None} for _ in range(min(group, rows - start))]
            writer.write_table(pa.table({"image": pa.array(cells, type=image_type)}, schema=schema))


# Linux copies a process's RSS high-water mark into the child it forks, so a
# child of a large process (bench/run.py holds images) reports at least the
# parent's peak. A small wrapper process forks the run and reports its peak.
_PEAK_OF_CHILD = """
import os, subprocess, sys
with open(sys.argv[1], "w") as out:  # the run's stdout; the wrapper's own stdout carries the result
    proc = subprocess.Popen(sys.argv[2:], stdout=out)
    _, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def measure(args: list[str], cwd: Path) -> tuple[int, float, int]:
    """(exit code, seconds, peak RSS in bytes) of `python -m pixelprune_cli ARGS`."""
    start = time.perf_counter()
    with open(cwd / "stderr.txt", "w") as err:
        peak = subprocess.run([sys.executable, "-c", _PEAK_OF_CHILD, str((cwd / "stdout.txt").resolve()),
                               sys.executable, "-m", "pixelprune_cli", *args],
                              cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True, check=True).stdout
    seconds = time.perf_counter() - start
    code, max_rss = (int(v) for v in peak.split())
    if code != 0:
        sys.exit(f"run failed with exit {code}: {(cwd / 'stderr.txt').read_text()[-2000:]}")
    return code, seconds, max_rss * 1024  # Linux reports kilobytes


def huge_png(side: int = 8192) -> bytes:
    """An RGBA PNG of side x side pixels (the default --max-image-pixels): gradients under a varying alpha.

    Smooth content keeps the file small and quick to make; decoding it still
    needs every pixel, which is what this measures.
    """
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rgba = np.empty((side, side, 4), dtype=np.uint8)
    rgba[..., 0] = ramp[None, :]
    rgba[..., 1] = ramp[:, None]
    rgba[..., 2] = 128
    rgba[..., 3] = (ramp[None, :] + ramp[:, None]).astype(np.uint32) // 2
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG", compress_level=1)
    return out.getvalue()


def huge(count: int, workers_list: list[int]) -> None:
    """Peak RSS of compressing `count` 8192x8192 RGBA PNGs with each number of workers."""
    with tempfile.TemporaryDirectory(prefix="pixelprune-memory-") as tmp:
        work = Path(tmp)
        folder = work / "huge"
        folder.mkdir()
        # Made in a child process: a child's peak RSS counts what it had before exec (a copy
        # of this process), so this process must stay small.
        subprocess.run([sys.executable, __file__, "--make-huge", str(folder / "huge_0.png")], check=True)
        data = (folder / "huge_0.png").read_bytes()
        for k in range(1, count):
            (folder / f"huge_{k}.png").write_bytes(data)
        _, _, baseline = measure(["stats", str(Path(__file__).resolve().parent.parent / "samples" / "chart.png"),
                                  "--workers", "1", "--no-progress", "--table", "none"], work)
        print(f"one small image (imports and runtime): peak RSS {baseline / 2**20:7.1f} MB")
        peaks = {}
        for workers in workers_list:
            args = ["compress", "huge", "-o", f"out_{workers}.arrow", "--workers", str(workers), "--no-progress",
                    "--table", "none"]
            _, seconds, peaks[workers] = measure(args, work)
            print(f"{count} x 8192x8192 RGBA PNG ({len(data) / 2**20:.0f} MB each), --workers {workers}: "
                  f"peak RSS {peaks[workers] / 2**20:7.1f} MB  {seconds:5.1f} s", flush=True)
        if 1 in peaks and 2 in peaks:
            ratio = peaks[2] / peaks[1]
            print(f"--workers 2 / --workers 1: {ratio:.3f}x  (target <= {HUGE_WORKERS_RATIO}x: "
                  f"{'yes' if ratio <= HUGE_WORKERS_RATIO else 'NO'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--huge", type=int, metavar="N", help="instead: N images at the pixel limit (8192x8192 RGBA), "
                        "compressed with --workers 1 and 2")
    parser.add_argument("--small", type=int, default=2_000)
    parser.add_argument("--large", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="also print the --json summary (it lists every image)")
    parser.add_argument("--shards", action="store_true", help="write -o DIR/ shards instead of one .arrow file")
    parser.add_argument("--make-huge", metavar="PATH", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.make_huge:
        return Path(options.make_huge).write_bytes(huge_png()) and None
    if options.huge:
        return huge(options.huge, [1, 2])

    with tempfile.TemporaryDirectory(prefix="pixelprune-memory-") as tmp:
        work = Path(tmp)
        peaks = {}
        for rows in (options.small, options.large):
            source = work / f"images_{rows}.parquet"
            start = time.perf_counter()
            write_parquet(source, rows)
            made = time.perf_counter() - start
            output = f"out_{rows}/" if options.shards else f"out_{rows}.arrow"
            args = ["compress", source.name, "-o", output, "--workers", str(options.workers), "--no-progress",
                    *(["--json"] if options.json else ["--table", "summary"])]
            _, seconds, peak = measure(args, work)
            peaks[rows] = peak
            print(f"{rows:>7,} images  peak RSS {peak / 2**20:7.1f} MB  {seconds:6.1f} s "
                  f"({rows / seconds:6.0f} img/s; input {source.stat().st_size / 2**20:.0f} MB made in {made:.0f} s)",
                  flush=True)
        small, large = peaks[options.small], peaks[options.large]
        limit = small * TOLERANCE + SLACK_MB * 2**20
        verdict = "bounded" if large <= limit else "GROWS with the image count"
        print(f"larger / smaller = {large / small:.3f}; limit {limit / 2**20:.1f} MB "
              f"(smaller x {TOLERANCE} + {SLACK_MB} MB): {verdict}")


if __name__ == "__main__":
    main()
