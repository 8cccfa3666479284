"""Where rows go: one Arrow/Parquet file, an Arrow stream on stdout, or a folder of shards.

Files are written batch by batch to a hidden temporary file beside the target
and renamed into place only when complete, so a reader never sees a partial
output under the final name. Failed images go to `<output>.errors.jsonl`
(one JSON object per line: id, stage, reason). A lock file beside the target
keeps a second run off an output being written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from .errors import ConfigError, OutputError, broken_pipe, one_line, option

ARROW_SUFFIXES = (".arrow", ".ipc", ".feather")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Measured on the bench corpus (README, "Performance"): zstd gives the smallest
# files (1.7x the source PNGs) and, written on a background thread, costs no more
# wall time than lz4 (2.1x) or none (11.9x).
DEFAULT_COMPRESSION = "zstd"
MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"  # a shard folder's merged error report
STAGING = ".pixelprune-staging"  # inside DIR: a replacing (--overwrite) run's output until it commits
SWAP = ".pixelprune-swap"  # inside DIR: a committed replacement being moved into place
LOCK = ".pixelprune-lock"  # inside DIR; beside a file output it is .NAME.pixelprune-lock
STREAM_END = b"pixelprune_end"  # custom metadata of the empty batch that ends a complete `-o -` stream
_SHARD_FILE = re.compile(r"part-\d{5,}\.(arrow|parquet|errors\.jsonl)")
# A message header no Arrow reader accepts (a 2 GiB metadata length, then nothing):
# what an aborted stream ends with, so that it fails to read rather than looking complete.
_BROKEN_STREAM = b"\xff\xff\xff\xff\xff\xff\xff\x7f"


def output_format(path: str) -> str:
    """'arrow' or 'parquet', from the file name."""
    suffix = Path(path).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return "arrow"


def errors_path(output: str) -> Path:
    return Path(str(output) + ".errors.jsonl")


def _temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial-{os.getpid()}")


def compression_arg(compression: str | None):
    return None if compression in (None, "none", "uncompressed") else compression


@contextmanager
def output_errors(path):
    """OSError while writing `path` -> OutputError naming it and the reason (a full disk, a read-only place).

    A closed pipe stays a BrokenPipeError: the CLI ends quietly when its reader goes away.
    """
    try:
        yield
    except OSError as exc:
        if broken_pipe(exc):
            raise
        raise OutputError(f"cannot write {path}: {exc.strerror or one_line(exc)}") from None


def _create_new(path: Path) -> int:
    """A new file at path, never through a symlink someone planted there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o666)
    except FileExistsError:  # our own temporary name and pid: a leftover of a dead process
        os.unlink(path)
        return os.open(path, flags, 0o666)


class AtomicFile:
    """A file under a temporary name until commit() renames it into place."""

    def __init__(self, target: Path, mode: str = "wb"):
        self.target = Path(target)
        self.temp = _temp_path(self.target)
        with output_errors(self.target):
            fd = _create_new(self.temp)
        self.handle = os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8")

    def commit(self) -> None:
        try:
            with output_errors(self.target):
                self.handle.flush()
                os.fsync(self.handle.fileno())
                self.handle.close()
                os.replace(self.temp, self.target)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Remove the temporary file; never raises, so a failed write cannot leave it behind."""
        try:
            if not self.handle.closed:
                self.handle.close()  # a full disk fails the final flush; the descriptor is closed anyway
        except OSError:
            pass
        finally:
            try:
                self.temp.unlink(missing_ok=True)
            except OSError:
                pass


def write_atomically(path, write) -> None:
    """write(handle) into a temporary file renamed to `path` when done; on any failure nothing is left.

    The rename replaces a symlink at `path` rather than writing through it.
    """
    out = AtomicFile(path)
    try:
        with output_errors(path):
            write(out.handle)
    except BaseException:
        out.abort()
        raise
    out.commit()


def file_checksum(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file: what a manifest records of each committed shard.

    Read in 1 MiB blocks into one buffer (hashlib.file_digest does the same, but only from Python 3.11).
    """
    digest = hashlib.sha256()
    block = bytearray(1 << 20)
    view = memoryview(block)
    with open(path, "rb") as handle:
        while size := handle.readinto(block):
            digest.update(view[:size])
        return os.fstat(handle.fileno()).st_size, digest.hexdigest()


class TargetLock:
    """An exclusive lock (flock) on a small file beside an output: one run writes an output at a time.

    The file holds "pixelprune pid N" for the message a second run prints, and
    is removed on release; one left by a killed run is harmless (the kernel
    dropped its lock) and is taken over by the next run.
    """

    def __init__(self, path: Path, output: str):
        import fcntl

        self.path = Path(path)
        while True:
            try:
                with output_errors(output):
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OutputError:
                if self.path.is_symlink():
                    raise ConfigError(f"{self.path} is in the way: a symbolic link, not a pixelprune lock file; "
                                      "move it or write elsewhere") from None
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 100, 0).decode("ascii", "replace").strip()
                os.close(fd)
                raise ConfigError(f"{output} is being written by another run ({holder or 'pixelprune'}); "
                                  "wait for it to finish, or write elsewhere") from None
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the run that held it removed it meanwhile: lock the file there now
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_size and not os.pread(fd, 11, 0).startswith(b"pixelprune ")):
            os.close(fd)
            raise ConfigError(f"{self.path} is in the way: it is not a pixelprune lock file; move it or write elsewhere")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pixelprune pid {os.getpid()}\n".encode(), 0)
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still held, so no other run locks a file about to vanish
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


class TableFile:
    """One Arrow IPC file or Parquet file, written batch by batch, atomically."""

    def __init__(self, target: Path, schema: pa.Schema, fmt: str, compression: str | None):
        self.file = AtomicFile(target)
        codec = compression_arg(compression)
        self.parquet_schema = None
        try:
            with output_errors(target):
                if fmt == "parquet":
                    import pyarrow.parquet as pq

                    from .schema import parquet_schema

                    self.parquet_schema = parquet_schema(schema)
                    # Measured (README, "Performance"): dictionaries never pay on unique
                    # pixel tokens; statistics are kept for the flat columns only. A
                    # page cannot end inside a row, so an image's pixels are one page;
                    # version 2 pages are compressed in place, where version 1 pages
                    # keep a second copy of the largest one until the next row group.
                    flat = [f.name for f in schema if not pa.types.is_nested(f.type)]
                    self.writer = pq.ParquetWriter(self.file.handle, self.parquet_schema, compression=codec or "none",
                                                   use_dictionary=False, write_statistics=flat, data_page_version="2.0")
                else:
                    options = pa.ipc.IpcWriteOptions(compression=codec)
                    self.writer = pa.ipc.new_file(self.file.handle, schema, options=options)
        except BaseException:
            self.file.abort()
            raise
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            if self.parquet_schema is not None:
                from .schema import pixels_as_binary

                batch = pixels_as_binary(batch, self.parquet_schema)
            with output_errors(self.file.target):
                self.writer.write_batch(batch)
            pa.default_memory_pool().release_unused()  # the pool keeps freed batch buffers resident otherwise
            self.rows += batch.num_rows

    def commit(self) -> None:
        try:
            with output_errors(self.file.target):
                self.writer.close()
        except BaseException:
            self.file.abort()
            raise
        self.file.commit()

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass
        finally:
            self.file.abort()


class ErrorLog:
    """Failed images as JSON lines, written as they come, renamed into place on commit."""

    def __init__(self, target: Path):
        self.file = AtomicFile(target, "w")
        self.count = 0

    def add(self, record: dict) -> None:
        with output_errors(self.file.target):
            self.file.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def commit(self) -> None:
        self.file.commit()

    def abort(self) -> None:
        self.file.abort()


class RowSink:
    """Takes results in input order, batches rows, hands batches and error records on.

    Batches go to `self.table` (a TableFile) and error records to `self.errors`
    (an ErrorLog), which subclasses open; StdoutSink overrides both.
    """

    BATCH_ROWS = 64  # rows per Arrow record batch ...
    BATCH_BYTES = 16 << 20  # ... or fewer, once their pixels reach this size (a short tail to wait for at the end)

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.pending: list = []
        self.pending_bytes = 0

    def add(self, result) -> None:
        """A CodedImage (a row) or a FailedImage (an error record)."""
        if hasattr(result, "pixels"):
            self.pending.append(result)
            self.pending_bytes += result.pixels.nbytes
            if len(self.pending) >= self.BATCH_ROWS or self.pending_bytes >= self.BATCH_BYTES:
                self.flush()
        else:
            self._error(result.as_dict())

    def flush(self) -> None:
        if self.pending:
            from .schema import to_record_batch

            self._write(to_record_batch(self.pending, self.schema))
            self.pending, self.pending_bytes = [], 0

    def _write(self, batch: pa.RecordBatch) -> None:
        self.table.write(batch)

    def _error(self, record: dict) -> None:
        self.errors.add(record)


class FileSink(RowSink):
    """Rows to one file, errors beside it in OUTPUT.errors.jsonl."""

    def __init__(self, target: str, schema: pa.Schema, compression: str | None, overwrite: bool = False):
        super().__init__(schema)
        self.target = Path(target)
        self.lock = TargetLock(self.target.with_name(f".{self.target.name}.pixelprune-lock"), target)
        self.table = self.errors = None
        try:
            if not overwrite and os.path.lexists(self.target):  # another run finished it since check_target
                raise ConfigError(f"{target} already exists; pass {option('overwrite')} to replace it")
            ours = {self.target.name, errors_path(target).name}
            _remove_stale_partials(self.target.parent, lambda name: name in ours)
            self.table = TableFile(self.target, schema, output_format(target), compression)
            self.errors = ErrorLog(errors_path(target))
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        self.flush()
        self.table.commit()
        self.errors.commit()
        self.lock.release()

    def abort(self) -> None:
        for part in (self.table, self.errors):
            if part is not None:
                part.abort()
        self.lock.release()


class _CountingStream:
    """A write-only file that counts what passes through to `raw` (a pipe has no size to ask afterwards)."""

    def __init__(self, raw):
        self.raw, self.bytes_written = raw, 0

    def write(self, data) -> int:
        self.bytes_written += memoryview(data).nbytes
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    @property
    def closed(self) -> bool:
        return self.raw.closed


class StdoutSink(RowSink):
    """An Arrow IPC stream on stdout (for pipes); errors are only reported.

    A complete stream ends with an empty batch whose custom metadata
    `pixelprune_end` holds {"rows": N}; readers check it, so a stream cut
    anywhere, even between two batches, is told from a whole one. An aborted
    run writes no marker and ends the stream with a header no reader accepts.
    """

    def __init__(self, schema: pa.Schema, compression: str | None):
        super().__init__(schema)
        options = pa.ipc.IpcWriteOptions(compression=compression_arg(compression))
        with output_errors("standard output"):
            self.stream = _CountingStream(sys.stdout.buffer)
            self.writer = pa.ipc.new_stream(self.stream, schema, options=options)
        self.rows = 0

    @property
    def bytes_written(self) -> int:
        return self.stream.bytes_written

    def _write(self, batch: pa.RecordBatch) -> None:
        with output_errors("standard output"):
            self.writer.write_batch(batch)
        self.rows += batch.num_rows

    def _error(self, record: dict) -> None:
        pass

    def commit(self) -> None:
        self.flush()
        end = pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in self.schema], schema=self.schema)
        with output_errors("standard output"):
            self.writer.write_batch(end, custom_metadata={STREAM_END: json.dumps({"rows": self.rows})})
            self.writer.close()
            sys.stdout.buffer.flush()

    def abort(self) -> None:
        """Leave the stream visibly broken: never closed as if complete."""
        try:
            sys.stdout.buffer.write(_BROKEN_STREAM)
            sys.stdout.buffer.flush()
        except Exception:  # the reader is gone, or stdout is: nothing left to mark
            pass


def is_shard_folder(output: str) -> bool:
    """`-o DIR/` (trailing slash) or an existing folder means sharded output."""
    return output != "-" and (output.endswith(("/", os.sep)) or Path(output).is_dir())


def shard_name(index: int, fmt: str = "arrow") -> str:
    return f"part-{index:05d}.{fmt}"


def shard_errors_name(index: int) -> str:
    return f"part-{index:05d}.errors.jsonl"


def _same_config(a: dict, b: dict) -> bool:
    """Configs match when everything but the tool version is equal."""
    strip = lambda meta: {k: v for k, v in meta.items() if k != "version"}
    return strip(a) == strip(b)


def is_shard_file(name: str) -> bool:
    """A name the shard writer gives its files: part-NNNNN.arrow, .parquet, .errors.jsonl (never `part-time notes.txt`)."""
    return _SHARD_FILE.fullmatch(name) is not None


def _remove_stale_partials(folder: Path, ours) -> None:
    """Delete temporary files that killed runs left behind (their process is gone).

    Only `.NAME.partial-PID` where ours(NAME) holds: temporaries of files this writer makes.
    """
    for temp in folder.glob(".*.partial-*"):
        name, _, pid = temp.name[1:].rpartition(".partial-")
        if not ours(name) or not pid.isdigit():
            continue
        alive = False
        if int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
        if not alive:
            temp.unlink(missing_ok=True)


def _is_folder_file(name: str) -> bool:
    """Every file a shard folder's writer makes, inside DIR or its staging folder."""
    return is_shard_file(name) or name in (MANIFEST, ERRORS)


def _remove_own_folder(folder: Path) -> None:
    """Empty a staging or swap folder of the files we write there, then remove it (left if anything else is inside)."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in folder.iterdir():
        if _is_folder_file(entry.name) and not entry.is_dir():
            entry.unlink()
    _remove_stale_partials(folder, _is_folder_file)
    try:
        folder.rmdir()
    except OSError:
        pass


def _columns(schema: pa.Schema) -> list[list[str]]:
    """A schema's columns as the manifest records them: [name, Arrow type] (the metadata is `config`)."""
    return [[f.name, str(f.type)] for f in schema]


class ShardedSink(RowSink):
    """Rows to DIR/part-NNNNN.arrow, `shard_size` input images per shard, plus manifest.json.

    Shard k holds the images at input positions [k*shard_size, (k+1)*shard_size),
    so shard boundaries depend only on the inputs and a resumed run redoes
    exactly the shards that were not committed. Each shard and its
    part-NNNNN.errors.jsonl are renamed into place, then the manifest is
    rewritten (atomically) to list it with their sizes and SHA-256, which
    `--resume` checks before keeping a shard. A completed run also writes
    errors.jsonl with every failure.

    A run that replaces an existing output (--overwrite) writes into
    DIR/.pixelprune-staging instead, so the old output stays whole until the
    new one is complete. Its commit renames the staging folder to
    DIR/.pixelprune-swap (the commit point), then moves the new files over the
    old ones, manifest last; a run killed during that move has it finished by
    the next run on DIR. Only files with the writer's own names are ever
    removed.
    """

    def __init__(self, folder: str, schema: pa.Schema, meta: dict, shard_size: int, compression: str | None,
                 fmt: str = "arrow", resume: bool = False, overwrite: bool = False, manifest_extra: dict | None = None):
        super().__init__(schema)
        self.manifest_extra = manifest_extra or {}  # e.g. {"engine": "ray"}
        self.folder = Path(folder)
        self.meta, self.shard_size, self.compression, self.fmt = meta, shard_size, compression, fmt
        self.layout = {"format": fmt, "shard_size": shard_size, "compression": compression_arg(compression) or "none",
                       "columns": _columns(schema)}  # with `config`: everything that shapes the files
        with output_errors(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
        self.lock = TargetLock(self.folder / LOCK, str(folder))
        self.current: int | None = None
        self.finished = False
        try:
            with output_errors(self.folder):
                self._start(resume, overwrite)
        except BaseException:
            self.lock.release()
            raise
        self.done = {s["index"] for s in self.shards}
        self.resumed = {  # what earlier runs committed: part of this output, not of this run's counts
            "resumed_shards": len(self.shards),
            "resumed_images": sum(s["images"] for s in self.shards),
            "resumed_failed": sum(s["failed"] for s in self.shards),
        }
        if self.damaged:
            self.resumed["damaged_shards"] = self.damaged
        self._seen: dict[int, "hashlib._Hash"] = {}
        self._seen_count: dict[int, int] = {}
        self._verified: set[int] = set()
        self._ids = hashlib.sha1()
        self.table = self.errors = None
        self.counts = {"images": 0, "written": 0, "failed": 0}

    def _start(self, resume: bool, overwrite: bool) -> None:
        """Choose where this run writes (DIR, or its staging folder) and which committed shards it keeps."""
        self._finish_swap()  # a replacement a killed run had committed but not moved into place
        staging = self.folder / STAGING
        existing = self._read_manifest(self.folder) is not None or any(
            is_shard_file(p.name) for p in self.folder.iterdir())
        if resume and (staging / MANIFEST).is_file():
            self.dir = staging  # finish the interrupted replacement; the old output stays as it is
        elif resume or not existing:
            self.dir = self.folder
        elif not overwrite:
            raise ConfigError(f"{self.folder} already holds a pixelprune output; pass {option('resume')} to finish it "
                              f"or {option('overwrite')} to replace it")
        else:
            self.dir = staging
        if self.dir != staging:
            _remove_own_folder(staging)
        manifest = self._read_manifest(self.dir) if resume else None
        if manifest is None and resume and any(is_shard_file(p.name) for p in self.dir.iterdir()):
            raise ConfigError(f"{self.folder} holds shards but no {MANIFEST}; pass {option('overwrite')} to start again")
        self.shards, self.damaged = [], []
        if manifest is not None:
            self._check_same(manifest)
            for record in manifest["shards"]:
                (self.shards if self._intact(record) else self.damaged).append(record)
            for record in self.damaged:  # torn, bit-flipped or missing: redone; only our own names are removed
                for name in (record.get("file"), record.get("errors")):
                    if isinstance(name, str) and is_shard_file(name):
                        (self.dir / name).unlink(missing_ok=True)
            self.damaged = [r.get("file") for r in self.damaged]
        if self.dir == staging:
            if manifest is None:
                _remove_own_folder(staging)
            staging.mkdir(exist_ok=True)
        _remove_stale_partials(self.dir, _is_folder_file)
        if not self.shards or self.damaged:
            self._write_manifest(complete=False)  # resuming leaves intact files alone until a shard is done

    def _check_same(self, manifest: dict) -> None:
        """Refuse (ConfigError) to resume with options that would write different files."""
        layout = {key: manifest.get(key) for key in self.layout}
        layout["format"] = layout["format"] or "arrow"
        if "compression" not in manifest and "columns" not in manifest:  # from an older version: its shards
            layout.update(compression=self.layout["compression"], columns=self.layout["columns"])  # fail _intact
        if not _same_config(manifest["config"], self.meta) or layout != self.layout:
            changed = [k for k in self.layout if layout[k] != self.layout[k]]
            raise ConfigError(
                f"{self.folder} was written with a different configuration "
                f"({_describe(manifest['config'])}, shard size {manifest['shard_size']}"
                + (f"; {', '.join(changed)} differ" if changed else "") + "); "
                f"resume with the same options, or pass {option('overwrite')} to start again"
            )

    def _intact(self, record: dict) -> bool:
        """A committed shard is kept only under its own names, with the size and SHA-256 the manifest holds."""
        index = record.get("index")
        if not isinstance(index, int) or index < 0:
            return False
        if record.get("file") != shard_name(index, self.fmt) or record.get("errors") != shard_errors_name(index):
            return False  # a manifest never sends a read outside the folder
        for name, size, digest in ((record["file"], record.get("bytes"), record.get("sha256")),
                                   (record["errors"], record.get("errors_bytes"), record.get("errors_sha256"))):
            path = self.dir / name
            if size is None or path.is_symlink() or not path.is_file() or path.stat().st_size != size:
                return False
            if file_checksum(path) != (size, digest):
                return False
        return True

    def _finish_swap(self) -> None:
        """Move a committed replacement into place: its files over the old ones, the manifest last. Repeatable."""
        swap = self.folder / SWAP
        if not swap.is_dir() or swap.is_symlink():
            return
        try:
            manifest = self._read_manifest(swap)
        except ConfigError:  # cannot happen to a manifest we renamed there whole; leave the old output as it is
            manifest = None
        if manifest is not None:
            names = (s.get(key) for s in manifest["shards"] for key in ("file", "errors"))
            new = {MANIFEST, ERRORS, *(n for n in names if isinstance(n, str) and is_shard_file(n))}
            for old in self.folder.iterdir():
                if is_shard_file(old.name) and old.name not in new and not old.is_dir():
                    old.unlink()
            for name in sorted(new - {MANIFEST}) + [MANIFEST]:
                if (swap / name).is_file():
                    os.replace(swap / name, self.folder / name)
        _remove_own_folder(swap)

    # -- which inputs to skip on resume
    def skips(self, position: int, image_id: str) -> bool:
        """True for inputs of committed shards, whose ids are hashed for `verify_resumed`.

        Inputs come in order, so when shard k is opened every committed shard
        before k has had all its ids seen; those after k (a shard missing in
        the middle, or a folder a Ray run left) are checked later, at the
        latest on commit.
        """
        shard = position // self.shard_size
        if shard not in self.done:
            return False
        digest = self._seen.setdefault(shard, hashlib.sha1())
        digest.update(image_id.encode() + b"\n")
        self._seen_count[shard] = self._seen_count.get(shard, 0) + 1
        return True

    def verify_resumed(self, before: int | None = None) -> None:
        """Refuse (ConfigError) when a committed shard's inputs changed; only shards before `before` if given."""
        for record in self.shards:
            k = record["index"]
            if k in self._verified or (before is not None and k >= before):
                continue
            seen = self._seen.get(k)
            if seen is None or self._seen_count[k] != record["images"] or seen.hexdigest() != record.get("ids_sha1"):
                raise ConfigError(
                    f"{self.folder}: the inputs changed since {record['file']} was written (its images differ); "
                    f"resume needs the same inputs, or pass {option('overwrite')} to start again"
                )
            self._verified.add(k)

    def add_at(self, position: int, result) -> None:
        shard = position // self.shard_size
        if shard != self.current:
            self._close_shard()
            self.verify_resumed(before=shard)
            self._open_shard(shard)
        self._ids.update(result.id.encode() + b"\n")
        self.counts["images"] += 1
        self.counts["written" if hasattr(result, "pixels") else "failed"] += 1
        self.add(result)

    def record_shard(self, index: int, images: int, failed: int, ids_sha1: str, checksums: dict | None = None) -> None:
        """List a committed shard in the manifest: one of ours, or one a Ray task wrote (it passes `checksums`)."""
        if checksums is None:
            checksums = shard_checksums(self.dir, index, self.fmt)
        self.shards.append({"index": index, "file": shard_name(index, self.fmt), "errors": shard_errors_name(index),
                            "images": images, "written": images - failed, "failed": failed, "ids_sha1": ids_sha1,
                            **checksums})
        self.done.add(index)
        self._verified.add(index)  # written in this run: nothing to check against
        self._write_manifest(complete=False)

    def _open_shard(self, index: int) -> None:
        table = TableFile(self.dir / shard_name(index, self.fmt), self.schema, self.fmt, self.compression)
        try:
            self.errors = ErrorLog(self.dir / shard_errors_name(index))
        except BaseException:
            table.abort()
            raise
        self.table, self.current = table, index
        self.counts = {"images": 0, "written": 0, "failed": 0}
        self._ids = hashlib.sha1()

    def _close_shard(self) -> None:
        if self.current is None:
            return
        self.flush()
        self.table.commit()
        self.errors.commit()
        index, self.current = self.current, None
        self.record_shard(index, self.counts["images"], self.counts["failed"], self._ids.hexdigest())

    def commit(self) -> None:
        self._close_shard()
        self.verify_resumed()
        with output_errors(self.folder):
            merged = AtomicFile(self.dir / ERRORS, "wb")
            try:
                for shard in sorted(self.shards, key=lambda s: s["index"]):
                    merged.handle.write((self.dir / shard["errors"]).read_bytes())
            except BaseException:
                merged.abort()
                raise
            merged.commit()
            self._write_manifest(complete=True)
            if self.dir != self.folder:
                os.rename(self.dir, self.folder / SWAP)  # the commit point of a replacement
                self._finish_swap()
            else:
                listed = {n for s in self.shards for n in (s["file"], s["errors"])}
                for old in self.folder.iterdir():  # shards a torn earlier run left, not part of this output
                    if is_shard_file(old.name) and old.name not in listed and not old.is_dir():
                        old.unlink()
                _remove_stale_partials(self.folder, _is_folder_file)
        self.finished = True
        self.lock.release()

    def abort(self) -> None:
        """Drop the shard in progress; committed shards stay for --resume (a replacing run's in its staging folder)."""
        if self.finished:
            return
        try:
            if self.current is not None:
                self.table.abort()
                self.errors.abort()
                self.current = None
            if self.dir != self.folder and not self.shards:
                _remove_own_folder(self.dir)  # a replacement that committed nothing leaves no trace
        except OSError:
            pass
        finally:
            self.lock.release()

    @staticmethod
    def _read_manifest(folder: Path) -> dict | None:
        """The manifest in folder, None if there is none; ConfigError for a manifest.json that is not ours."""
        path = folder / MANIFEST
        if not os.path.lexists(path):
            return None
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
        if not (isinstance(manifest, dict) and isinstance(manifest.get("config"), dict)
                and isinstance(manifest.get("shard_size"), int) and isinstance(manifest.get("shards"), list)
                and all(isinstance(s, dict) for s in manifest["shards"])):
            raise ConfigError(f"{path} is not a pixelprune manifest; pixelprune replaces only its own files: "
                              "move it, or write elsewhere")
        return manifest

    def _write_manifest(self, complete: bool) -> None:
        shards = sorted(self.shards, key=lambda s: s["index"])
        manifest = {
            "config": self.meta,
            **self.layout,
            "complete": complete,
            **self.manifest_extra,
            "images": sum(s["images"] for s in shards),
            "written": sum(s["written"] for s in shards),
            "failed": sum(s["failed"] for s in shards),
            "shards": shards,
        }
        write_atomically(self.dir / MANIFEST, lambda handle: handle.write(json.dumps(manifest, indent=1).encode() + b"\n"))


def shard_checksums(folder: Path, index: int, fmt: str) -> dict:
    """Size and SHA-256 of a committed shard and of its error log, as the manifest lists them."""
    size, digest = file_checksum(Path(folder) / shard_name(index, fmt))
    errors_size, errors_digest = file_checksum(Path(folder) / shard_errors_name(index))
    return {"bytes": size, "sha256": digest, "errors_bytes": errors_size, "errors_sha256": errors_digest}


def _describe(meta: dict) -> str:
    return ", ".join(f"{k}={meta.get(k)}" for k in ("preset", "method", "metric", "tau"))


def check_target(output: str, overwrite: bool) -> None:
    """Refuse to replace an existing output unless asked (exit code 2, nothing touched)."""
    if output == "-" or is_shard_folder(output):
        return
    path = Path(output)
    if os.path.lexists(path) and not overwrite:
        raise ConfigError(f"{output} already exists; pass {option('overwrite')} to replace it")
    if not path.parent.exists():
        raise ConfigError(f"folder {path.parent} does not exist")
