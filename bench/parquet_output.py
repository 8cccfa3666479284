"""Parquet output against Arrow output, side by side: time, peak RSS and bytes (`make bench` rows 7 and 8).

Target 7: `-o x.parquet` and `-o DIR/ --shard-format parquet` cost at most
1.15x the time of their Arrow twins at -j1 and -j2, peak at most 1.2x their
RSS, and write at most 1.1x their bytes. Target 8: the same time ratio with
`--engine ray` (one local Ray of 2 CPUs, started once, so the ratio is of the
runs, not of Ray's start-up).

Time is measured in this process (interleaved rounds, as run.py does); peak RSS
in a subprocess per run (bench/memory.py's wait4), since one process's peak
is a maximum over everything it did before. Each time row gives the spread of
the per-round ratios too, and a last row the issue's figures side by side:
time at -j1 / -j2 / shards and the largest peak RSS ratio, from this one run.
`bench/run.py --parquet-inputs DIR` measures these rows on another folder of images.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
from pathlib import Path

# Every Ray the bench starts (in process, or in `pixelprune --engine ray` children, which inherit
# this) binds to 127.0.0.1, not the machine's outward address; engines.py and run.py import this module.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from inputs import WORK

OUT = WORK / "out"
TIME_LIMIT, RSS_LIMIT, SIZE_LIMIT = 1.15, 1.2, 1.1
SHARDS = 3  # the input in 3 shards (the 10 bench files: shards of 4), so shard boundaries are part of the run
RAY_COPIES, RAY_SHARD = 8, 10  # the Ray input: the bench files 8 times over, one Parquet file, shards of 10


def output_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.glob("part-*"))
    return path.stat().st_size


def target_of(kind: str, fmt: str, workers: int) -> Path:
    return OUT / (f"pq-{kind}-{fmt}-w{workers}/" if kind == "shards" else f"pq-{kind}-w{workers}.{fmt}")


def shard_size(n: int) -> int:
    return max(1, -(-n // SHARDS))


def _compress(folder: Path, n: int, kind: str, fmt: str, workers: int) -> None:
    from pixelprune_cli.api import compress
    from pixelprune_cli.run.job import RunOptions

    target = target_of(kind, fmt, workers)
    extra = {"shard_size": shard_size(n), "shard_format": fmt} if kind == "shards" else {}
    summary = compress([str(folder)], str(target) + ("/" if kind == "shards" else ""),
                       run=RunOptions(workers=workers, progress=False), overwrite=True, **extra)
    if summary.images != n or summary.errors:
        raise SystemExit(f"bench: compress coded {summary.images} of {n} images")


def parquet_rows(folder: Path, files: list[Path], quick: bool, row_type, interleaved) -> tuple[list, dict]:
    """Rows for target 7: time (in process), peak RSS (subprocesses) and bytes, Parquet / Arrow."""
    from memory import measure

    OUT.mkdir(parents=True, exist_ok=True)
    n = len(files)
    cases = [(kind, workers) for kind in ("file", "shards") for workers in (1, 2)]
    fns = {f"{kind} {fmt} w{w}": (lambda kind=kind, fmt=fmt, w=w: _compress(folder, n, kind, fmt, w))
           for kind, w in cases for fmt in ("arrow", "parquet")}
    cpu: dict[str, list[float]] = {}
    samples = interleaved(fns, 1 if quick else 5, cpu=cpu)
    rows, raw = [], {"seconds": samples, "cpu_seconds": cpu}
    time_ratios = {}
    for kind, w in cases:
        parquet, arrow = (statistics.median(samples[f"{kind} {fmt} w{w}"]) for fmt in ("parquet", "arrow"))
        ratio = time_ratios[kind, w] = parquet / arrow
        what = "-o x.parquet vs -o x.arrow" if kind == "file" else "-o DIR/ shards, parquet vs arrow"
        rows.append(row_type(7, f"{what}, -j{w}, {n} files, time{_spread(samples, f'{kind} parquet w{w}', f'{kind} arrow w{w}')}",
                             f"{parquet:.2f} s", f"{arrow:.2f} s", ratio, f"<= {TIME_LIMIT}x time", ratio <= TIME_LIMIT,
                             parquet, arrow))
        # CPU seconds are what the format costs whatever else runs on the machine; wall time is the target.
        parquet, arrow = (statistics.median(cpu[f"{kind} {fmt} w{w}"]) for fmt in ("parquet", "arrow"))
        rows.append(row_type(7, "  info: the same, process CPU time", f"{parquet:.2f} s", f"{arrow:.2f} s",
                             parquet / arrow, f"(<= {TIME_LIMIT}x)", None, parquet, arrow))

    peaks: dict[str, list[int]] = {}
    work = OUT / "rss"
    work.mkdir(exist_ok=True)
    for _ in range(1 if quick else 3):
        for kind, w in cases:
            for fmt in ("arrow", "parquet"):
                target = work / (f"{kind}-{fmt}" if kind == "shards" else f"{kind}.{fmt}")
                output = f"{target}/" if kind == "shards" else str(target)  # a trailing slash: a shard folder
                args = ["compress", str(folder), "-o", output, "--workers", str(w), "--no-progress",
                        "--table", "none", "--overwrite"]
                if kind == "shards":
                    args += ["--shard-format", fmt, "--shard-size", str(shard_size(n))]
                peaks.setdefault(f"{kind} {fmt} w{w}", []).append(measure(args, work)[2])
    raw["peak_rss"] = peaks
    rss_ratios = {}
    for kind, w in cases:
        parquet, arrow = (statistics.median(peaks[f"{kind} {fmt} w{w}"]) for fmt in ("parquet", "arrow"))
        rss_ratios[kind, w] = parquet / arrow
        what = "-o x.parquet vs -o x.arrow" if kind == "file" else "-o DIR/ shards, parquet vs arrow"
        rows.append(row_type(7, f"{what}, -j{w}, peak RSS{_spread(peaks, f'{kind} parquet w{w}', f'{kind} arrow w{w}')}",
                             f"{parquet / 2**20:.0f} MB", f"{arrow / 2**20:.0f} MB", parquet / arrow,
                             f"<= {RSS_LIMIT}x RSS", parquet / arrow <= RSS_LIMIT, parquet, arrow))
    rows.append(_side_by_side(row_type, n, time_ratios, rss_ratios))

    sizes = {}
    for kind in ("file", "shards"):
        parquet, arrow = (output_bytes(target_of(kind, fmt, 2)) for fmt in ("parquet", "arrow"))
        sizes[kind] = {"parquet": parquet, "arrow": arrow}
        what = "-o x.parquet vs -o x.arrow" if kind == "file" else "-o DIR/ shards, parquet vs arrow"
        rows.append(row_type(7, f"{what}, bytes", f"{parquet / 1e6:.2f} MB", f"{arrow / 1e6:.2f} MB", parquet / arrow,
                             f"<= {SIZE_LIMIT}x size", parquet / arrow <= SIZE_LIMIT, parquet, arrow))
    raw["bytes"] = sizes
    return rows, raw


def _spread(samples: dict, parquet: str, arrow: str) -> str:
    """The range of the per-round ratios (rounds are interleaved, so each pair ran under the same load)."""
    ratios = [p / a for p, a in zip(samples[parquet], samples[arrow])]
    return f" (rounds {min(ratios):.2f}-{max(ratios):.2f}x)" if len(ratios) > 1 else ""


def _side_by_side(row_type, n: int, time_ratios: dict, rss_ratios: dict):
    """The issue's figures from this one run: time -j1 / -j2 / shards (the slower of -j1, -j2), worst peak RSS."""
    times = (time_ratios["file", 1], time_ratios["file", 2], max(time_ratios["shards", 1], time_ratios["shards", 2]))
    rss = max(rss_ratios.values())
    holds = max(times) <= TIME_LIMIT and rss <= RSS_LIMIT
    return row_type(7, f"parquet / arrow, {n} files: time -j1 / -j2 / shards; peak RSS (largest)",
                    " / ".join(f"{t:.2f}x" for t in times) + f"; {rss:.2f}x", "-", max(times),
                    f"<= {TIME_LIMIT}x time, <= {RSS_LIMIT}x RSS", holds)


def ray_input(files: list[Path]) -> Path:
    """The bench files RAY_COPIES times over as one HF-style image Parquet file (cached)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = WORK / f"ray-input-{RAY_COPIES}x{len(files)}.parquet"
    if not path.exists():
        cell = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        cells = [{"bytes": f.read_bytes(), "path": None} for _ in range(RAY_COPIES) for f in files]
        pq.write_table(pa.table({"image": pa.array(cells, cell)}), path, row_group_size=RAY_SHARD)
    return path


def ray_rows(files: list[Path], quick: bool, row_type, interleaved) -> tuple[list, dict]:
    """Rows for target 8: `--engine ray` with Parquet shards against Arrow shards, one Ray for all runs."""
    try:
        import ray

        from pixelprune_cli.ray import compress_with_ray
        from pixelprune_cli.run.ray_engine import connect
    except ImportError:
        return [row_type(8, "--engine ray: not measured (make install EXTRAS=test,ray)", "-", "-", None,
                         f"<= {TIME_LIMIT}x time", None)], {}
    source = ray_input(files)
    n = RAY_COPIES * len(files)
    started = connect(num_cpus=2)

    def run(fmt: str) -> None:
        target = OUT / f"ray-{fmt}"
        shutil.rmtree(target, ignore_errors=True)
        summary = compress_with_ray([str(source)], str(target), shard_rows=RAY_SHARD, overwrite=True,
                                    progress=False, shard_format=fmt)
        if summary.images != n or summary.errors:
            raise SystemExit(f"bench: Ray coded {summary.images} of {n} images")

    try:
        samples = interleaved({"arrow": lambda: run("arrow"), "parquet": lambda: run("parquet")}, 1 if quick else 3)
    finally:
        if started:
            import ray

            ray.shutdown()
    parquet, arrow = (statistics.median(samples[fmt]) for fmt in ("parquet", "arrow"))
    sizes = {fmt: output_bytes(OUT / f"ray-{fmt}") for fmt in ("parquet", "arrow")}
    rows = [
        row_type(8, f"--engine ray shards, parquet vs arrow, {n} images, time", f"{parquet:.2f} s", f"{arrow:.2f} s",
                 parquet / arrow, f"<= {TIME_LIMIT}x time", parquet / arrow <= TIME_LIMIT, parquet, arrow),
        row_type(8, "--engine ray shards, parquet vs arrow, bytes", f"{sizes['parquet'] / 1e6:.1f} MB",
                 f"{sizes['arrow'] / 1e6:.1f} MB", sizes["parquet"] / sizes["arrow"], f"<= {SIZE_LIMIT}x size",
                 sizes["parquet"] / sizes["arrow"] <= SIZE_LIMIT, sizes["parquet"], sizes["arrow"]),
    ]
    print(f"  ray: {n} images in {parquet:.2f} s (parquet) / {arrow:.2f} s (arrow), Ray already up",
          file=sys.stderr, flush=True)
    return rows, {"seconds": samples, "bytes": sizes}
