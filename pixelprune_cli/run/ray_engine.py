"""The "ray" engine (`--engine ray`): one Ray task per shard, written where it runs.

How it splits the work, and why: the driver enumerates the
inputs from metadata only (folder listings, Parquet footers), giving every
image its input position and its local id (`NAME.parquet#ROW`, a folder
file's relative path). Ray's `read_parquet` cannot be used for this, because
it splits and reorders files without telling a row its index within its
file. Shard k is positions [k*S, (k+1)*S), as in the local sharded mode, and
one Ray task writes one shard: it reads its rows (a range of Parquet rows,
or a list of files) itself, codes them 16 at a time and writes
`part-NNNNN.parquet` (or `.arrow`) with the local writer's classes. Image bytes and pixels
never pass through the driver or Ray's object store; the driver only gets
back a small summary row per image. So ids are exact, memory is one batch per
task, and a shard that was written stays valid for `--resume`.

Ray itself is imported only when a run starts (`import_ray`): it is an optional extra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from pixelprune_cli.coding.pipeline import CodingConfig, process
from pixelprune_cli.errors import ConfigError, PixelpruneError, RayJobError, one_line, option
from pixelprune_cli.inputs.pieces import ParquetRows, Piece, SourceCounts, piece_size
from pixelprune_cli.inputs.sources import piece_ids, plan, read_piece
from pixelprune_cli.outputs.shard_commit import DiskCommit, ShardCommit, StoreCommit
from pixelprune_cli.outputs.writer import ErrorLog, RowSink, TableFile
from pixelprune_cli.records import FailedImage, ImageRow
from pixelprune_cli.report.report import Progress
from pixelprune_cli.report.summary import ImageEntry, Summary
from pixelprune_cli.run.job import no_images_error
from pixelprune_cli.storage import urls
from pixelprune_cli.storage.spool import spool_dir

DEFAULT_SHARD_ROWS = 1_000  # images per shard = per Ray task; see compress_with_ray
ROWS_PER_READ = 16  # Parquet rows read, and images coded, at a time in a task

SUMMARY_SCHEMA = pa.schema([
    pa.field("position", pa.int64()),
    pa.field("shard", pa.int64()),
    pa.field("id", pa.string()),
    pa.field("stage", pa.string()),  # null when the image was written
    pa.field("reason", pa.string()),
    pa.field("source_width", pa.int32()),
    pa.field("source_height", pa.int32()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("tokens", pa.int32()),
    pa.field("kept", pa.int32()),
    pa.field("tau", pa.float64()),
    pa.field("seconds", pa.float64()),
    pa.field("over_budget", pa.bool_()),
    pa.field("ids_sha1", pa.string()),  # on a shard's last row: the sha1 of its ids, as the manifest keeps it
    pa.field("checksums", pa.string()),  # on a shard's last row: JSON of its files' sizes and SHA-256
])


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise PixelpruneError("--engine ray needs Ray Data: pip install 'pixelprune[ray]'") from None
    return ray


def connect(ray_address: str | None = None, num_cpus: int | None = None) -> bool:
    """Start a local Ray (or join `ray_address`) unless Ray is up; True if this call started it.

    On a cluster the workers run this driver's copy of pixelprune
    (`py_modules`), so rows cannot differ because nodes hold other versions;
    its dependencies (numba, pillow, pyarrow) must be installed on the nodes.
    """
    import signal
    import threading

    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        # ray.init sets a SIGTERM handler that exits at once (status 15); the caller's (the
        # command line's, which cleans up and exits 143) is put back.
        held = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if ray_address:
            import pixelprune_cli  # the whole package travels, wherever this module sits in it

            package = str(Path(pixelprune_cli.__file__).resolve().parent)
            ray.init(address=ray_address, runtime_env={"py_modules": [package]}, **quiet)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, ignore_reinit_error=True, **quiet)
        if held is not None:
            signal.signal(signal.SIGTERM, held)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # pixelprune draws its own
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return started


def code_item(item, config: CodingConfig):
    """An item coded, or the read failure it already is. A list of images (a multi-image table's cell)
    fails its row: Ray's rows hold one image each (the local engine codes such tables)."""
    if isinstance(item, ImageRow):
        return FailedImage(item.id, "read", f"the cell holds a list of {len(item.reads)} images, and the Ray engine "
                           "codes one image per row; compress multi-image tables with the local engine", item.extra)
    return item if isinstance(item, FailedImage) else process(item.id, item.read, config, item.extra)


# -- planning on the driver: positions, ids and shards from metadata only --------------------

def split_into_shards(pieces: list[Piece], shard_rows: int) -> list[list[Piece]]:
    """Pieces (`sources.plan`) cut at input positions that are multiples of shard_rows: shard k = [k*S, (k+1)*S)."""
    shards: list[list[Piece]] = [[]]
    room = shard_rows
    for piece in pieces:
        while piece_size(piece) > room:  # only Parquet row runs are longer than 1
            assert isinstance(piece, ParquetRows)
            head = replace(piece, stop=piece.start + room)
            shards[-1].append(head)
            piece = replace(piece, start=head.stop)
            shards.append([])
            room = shard_rows
        shards[-1].append(piece)
        room -= piece_size(piece)
        if room == 0:
            shards.append([])
            room = shard_rows
    return [s for s in shards if s]


# -- the task: one shard, read, coded and written where it runs -------------------------------

def _piece_results(piece: Piece, config: CodingConfig, keep_columns: tuple):
    """CodedImage | FailedImage for every image of a piece, in input order; never raises for bad data."""
    for item in read_piece(piece, keep_columns):
        yield code_item(item, config)


def _summary_row(position: int, shard: int, result) -> dict:
    if isinstance(result, FailedImage):
        return {"position": position, "shard": shard, "id": result.id, "stage": result.stage, "reason": result.reason}
    return {"position": position, "shard": shard, "id": result.id, "stage": None, "reason": None,
            "source_width": result.source_width, "source_height": result.source_height,
            "width": result.width, "height": result.height, "tokens": result.tokens, "kept": result.kept,
            "tau": result.tau, "seconds": result.seconds, "over_budget": result.over_budget}


class _WriteShards:
    """map_batches function: shard specs in, one shard file each written, summary rows out."""

    def __init__(self, folder: str, schema: pa.Schema, config: CodingConfig, keep_columns: tuple,
                 shard_rows: int, compression: str | None, fmt: str):
        self.folder, self.schema, self.config = folder, schema, config  # a local path, or a URL on a store
        self.keep_columns, self.shard_rows, self.compression, self.fmt = keep_columns, shard_rows, compression, fmt

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for shard, spec, names in zip(batch.column("shard").to_pylist(), batch.column("spec").to_pylist(),
                                      batch.column("names").to_pylist()):
            rows += self.write_shard(shard, pickle.loads(spec), names)
        return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)

    def write_shard(self, shard: int, pieces: list[Piece], names: list[str]) -> list[dict]:
        """Code and write one shard under `names` (the sink's), committed as the sinks commit theirs (shard_commit)."""
        if not urls.is_url(self.folder):
            return self._write_shard_in(DiskCommit(Path(self.folder)), shard, pieces, names)
        spool = spool_dir()
        try:
            return self._write_shard_in(StoreCommit(self.folder, spool), shard, pieces, names)
        finally:
            shutil.rmtree(spool, ignore_errors=True)

    def _write_shard_in(self, committer: ShardCommit, shard: int, pieces: list[Piece], names: list[str]) -> list[dict]:
        folder = committer.writing_dir()
        table = TableFile(folder / names[0], self.schema, self.fmt, self.compression)
        errors = ErrorLog(folder / names[1])
        sink = RowSink(self.schema, table, errors)  # the local writer's batching (64 rows or 16 MB per batch)
        summary, position, ids = [], shard * self.shard_rows, hashlib.sha1()
        try:
            for piece in pieces:
                for result in _piece_results(piece, self.config, self.keep_columns):
                    sink.add(result)
                    summary.append(_summary_row(position, shard, result))
                    ids.update(result.id.encode() + b"\n")
                    position += 1
            sink.flush()
            summary[-1]["ids_sha1"] = ids.hexdigest()
            table.commit()
            errors.commit()
            checksums = committer.commit(folder / names[0], folder / names[1], (names[0], names[1]))
            summary[-1]["checksums"] = json.dumps(checksums)
        except BaseException:
            table.abort()
            errors.abort()
            raise
        return summary


# -- the driver --------------------------------------------------------------------------------

class RayEngine:
    """The "ray" engine of `api.compress`: one Ray task per shard, into a shard folder (engine.Engine)."""

    shard_size = DEFAULT_SHARD_ROWS
    shard_format = "parquet"  # what Ray and Spark users read; "arrow" shards are written several times faster

    def check(self, output: str, run, target: str) -> None:
        if target != "folder":
            raise ConfigError(f"{option('engine', 'ray')} writes shards: give a folder, -o DIR/")
        if run.fail_fast:
            raise ConfigError(f"{option('fail_fast')} is not supported with {option('engine', 'ray')}")
        import_ray()  # refused before the output is touched: a folder made for a run that cannot start blocks the next

    def run(self, job, run, summary: Summary, counts: SourceCounts):
        """Plan on the driver, write each missing shard in a Ray task, record it in the manifest as it lands.

        Resume, the manifest and the claim on the folder are the shard sink's (disk or store),
        through its interface for engines that write whole shards
        (`committed`, `shard_dir`, `record_shard`).
        """
        shards = split_into_shards(list(plan(job.inputs, job.sources, counts)), job.shard_size)
        if not shards:
            raise no_images_error(job.inputs, counts)
        ray = import_ray()
        # A new folder is made only once Ray is up: a cluster that cannot be reached leaves nothing behind.
        # A resumed folder exists already, and may need no Ray at all (every shard committed).
        started = False if job.resume else connect(run.ray_address, run.workers)
        try:
            sink = job.open_shard_folder(manifest_extra={"engine": "ray"})
            try:  # the sink holds a lock on the folder: release it however this ends
                summary.resumed = sink.resumed
                summary.engine = "ray"
                done = sink.committed(lambda k: (i for piece in (shards[k] if k < len(shards) else []) for i in piece_ids(piece)))
                todo = {k: sum(map(piece_size, pieces)) for k, pieces in enumerate(shards) if k not in done}
                if todo:
                    started = connect(run.ray_address, run.workers) or started
                    self._write(job, run, sink, shards, todo, _ShardOrder(summary, list(todo)))
                sink.commit()
            except BaseException:
                sink.abort()
                raise
        finally:
            if started:
                ray.shutdown()
        return sink

    @staticmethod
    def _write(job, run, sink, shards, todo: dict, in_order: _ShardOrder) -> None:
        ray = import_ray()
        bar = Progress(run.progress, total=sum(todo.values()))  # the plan is in memory: the total is known
        try:
            specs = [{"shard": k, "spec": pickle.dumps(shards[k]), "names": list(sink.shard_names(k))}
                     for k in todo]  # our own dataclasses, to our own tasks
            ds = ray.data.from_items(specs, override_num_blocks=len(specs))
            folder = sink.shard_dir if urls.is_url(str(sink.shard_dir)) else str(Path(sink.shard_dir).resolve())
            fn = _WriteShards(folder, job.schema, job.config, job.sources.keep_columns,
                              job.shard_size, job.compression, job.shard_format)
            coded = ds.map_batches(fn, batch_format="pyarrow", batch_size=1)
            seen, failed, hashes, checksums = dict.fromkeys(todo, 0), dict.fromkeys(todo, 0), {}, {}
            try:
                for batch in coded.iter_batches(batch_format="pyarrow", batch_size=None):
                    for row in batch.to_pylist():
                        shard = row["shard"]
                        in_order.add(shard, row["position"], _entry(row))
                        seen[shard] += 1
                        failed[shard] += row["stage"] is not None
                        if row["ids_sha1"] is not None:
                            hashes[shard] = row["ids_sha1"]
                            checksums[shard] = json.loads(row["checksums"])
                        bar.advance()
                        if seen[shard] == todo[shard]:
                            sink.record_shard(shard, seen[shard], failed[shard], hashes[shard], checksums[shard])
                            in_order.shard_done(shard)
            except PixelpruneError:
                raise
            except Exception as exc:
                raise RayJobError(f"the Ray job failed: {one_line(exc)}; shards written so far are kept, "
                                  "rerun with --resume to finish") from exc
        finally:
            bar.close()


class _ShardOrder:
    """Hands finished shards' summary rows to the Summary in input order, as soon as every earlier shard is in.

    Ray finishes shards in any order; holding only the ones that finished
    early keeps the driver's memory to the out-of-order window, not the run.
    """

    def __init__(self, summary: Summary, shards: list[int]):
        self.summary, self.pending = summary, sorted(shards, reverse=True)  # next shard to hand over: the last
        self.rows: dict[int, list] = {}
        self.finished: dict[int, list] = {}

    def add(self, shard: int, position: int, entry) -> None:
        self.rows.setdefault(shard, []).append((position, entry))

    def shard_done(self, shard: int) -> None:
        self.finished[shard] = self.rows.pop(shard, [])
        while self.pending and self.pending[-1] in self.finished:
            for _, entry in sorted(self.finished.pop(self.pending.pop()), key=lambda r: r[0]):
                if isinstance(entry, ImageEntry):
                    self.summary.add_image(entry)
                else:
                    self.summary.add_error(entry)


def _entry(row: dict):
    """A summary row from a task as the Summary keeps it: an ImageEntry, or an error record."""
    if row["stage"] is not None:
        return {"id": row["id"], "stage": row["stage"], "reason": row["reason"]}
    return ImageEntry(row["id"], (row["source_width"], row["source_height"]), (row["width"], row["height"]),
                      row["tokens"], row["kept"], row["seconds"], row["tau"], over_budget=row["over_budget"])
