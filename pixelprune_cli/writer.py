"""Where rows go: one Arrow/Parquet file or an Arrow stream on stdout (a folder of shards: shards.py).

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
import stat
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from .errors import ConfigError, OutputError, broken_pipe, one_line, option
from .formats import output_format, table_format
from .records import CodedImage, Result, Resumed
from .storage import is_url

# Measured on the bench corpus (README, "Performance"): zstd gives the smallest
# files (1.7x the source PNGs) and, written on a background thread, costs no more
# wall time than lz4 (2.1x) or none (11.9x).
DEFAULT_COMPRESSION = "zstd"
STREAM_END = b"pixelprune_end"  # custom metadata of the empty batch that ends a complete `-o -` stream
# A message header no Arrow reader accepts (a 2 GiB metadata length, then nothing):
# what an aborted stream ends with, so that it fails to read rather than looking complete.
_BROKEN_STREAM = b"\xff\xff\xff\xff\xff\xff\xff\x7f"


def errors_path(output: str) -> Path:
    path = Path(output)
    return path.with_name(fitting_name(path.name, ".errors.jsonl"))


def _temp_path(target: Path) -> Path:
    return target.with_name(f".{temp_stem(target.name)}.partial-{os.getpid()}")


_PARTIAL_ROOM = ".partial-" + "9" * 10  # room for any pid, so a name is cut the same whatever pid wrote it


def temp_stem(name: str) -> str:
    """NAME in `.NAME.partial-PID`: the file's name, shortened when it is long (fitting_name)."""
    return fitting_name(name, _PARTIAL_ROOM, ".")[1:-len(_PARTIAL_ROOM)]


def lock_path(target: Path) -> Path:
    """`.NAME.pixelprune-lock` beside the output NAME (NAME shortened as fitting_name does)."""
    return target.with_name(fitting_name(target.name, ".pixelprune-lock", "."))


NAME_MAX = 255  # bytes in one file name on Linux file systems (ext4, xfs, btrfs, tmpfs)


def fitting_name(name: str, suffix: str, prefix: str = "") -> str:
    """prefix + name + suffix, with name cut and given a SHA-1 tag when the whole would pass NAME_MAX bytes.

    A legal 246-byte output name must not fail because its lock, temporary or
    error-log name adds bytes. The tag (`~` and 16 hex digits of the full
    name's hash) keeps two long names that share a beginning apart.
    """
    raw = os.fsencode(name)
    room = NAME_MAX - len(os.fsencode(prefix + suffix))
    if len(raw) <= room:
        return prefix + name + suffix
    tag = "~" + hashlib.sha1(raw).hexdigest()[:16]
    return prefix + os.fsdecode(raw[:room - len(tag)]) + tag + suffix


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


# What this process holds and must give back if it is interrupted: temporary files not yet
# renamed into place, locks, a shard folder's staging. A signal turned into an exception can
# land between acquiring one and the `try` meant to release it, so each is listed here before
# (or as soon as) it exists, and the command line's interrupt handler releases what is left.
_HELD: dict[object, Callable[[], None]] = {}


def hold(owner: object, release: Callable[[], None]) -> None:
    """List `release` to run should the process be interrupted before `let_go(owner)`."""
    _HELD[owner] = release


def let_go(owner: object) -> None:
    _HELD.pop(owner, None)


def release_everything_held() -> None:
    """Release what is still held, newest first (a sink before the lock it took); never raises."""
    for owner, release in reversed(list(_HELD.items())):
        try:
            release()
        except Exception:
            pass
        _HELD.pop(owner, None)


class AtomicFile:
    """A file under a temporary name until commit() renames it into place."""

    def __init__(self, target: Path, mode: str = "wb"):
        self.target = Path(target)
        self.temp = _temp_path(self.target)
        hold(self, lambda: self.temp.unlink(missing_ok=True))  # listed before it exists
        with output_errors(self.target):
            fd = _create_new(self.temp)
        self.handle = os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8")

    def commit(self) -> None:
        self.seal()
        self.publish()

    def seal(self) -> None:
        """Everything written is on disk, still under the temporary name."""
        try:
            with output_errors(self.target):
                if not self.handle.closed:
                    self.handle.flush()
                    os.fsync(self.handle.fileno())
                    self.handle.close()
        except BaseException:
            self.abort()
            raise

    def publish(self) -> None:
        """Rename the sealed file into place."""
        try:
            with output_errors(self.target):
                os.replace(self.temp, self.target)
        except BaseException:
            self.abort()
            raise
        let_go(self)

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
                let_go(self)
            except OSError:
                pass


def write_atomically(path, write) -> None:
    """write(handle) into a temporary file renamed to `path` when done; on any failure nothing is left.

    The rename replaces a symlink at `path` rather than writing through it.
    On an object store the file is spooled locally and uploaded whole.
    """
    if is_url(str(path)):
        from .objectstore import write_object

        return write_object(str(path), write)
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
        self.fd: int | None = fd
        hold(self, self.release)  # ours from here: an interrupt leaves no lock file behind
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pixelprune pid {os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still held, so no other run locks a file about to vanish
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        let_go(self)


class TableFile:
    """One Arrow IPC file or Parquet file, written batch by batch, atomically."""

    def __init__(self, target: Path, schema: pa.Schema, fmt: str, compression: str | None):
        self.file = AtomicFile(target)
        codec = compression_arg(compression)
        try:
            with output_errors(target):
                self.writer = table_format(fmt).open_writer(self.file.handle, schema, codec)
        except BaseException:
            self.file.abort()
            raise
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            with output_errors(self.file.target):
                self.writer.write_batch(batch)
            pa.default_memory_pool().release_unused()  # the pool keeps freed batch buffers resident otherwise
            self.rows += batch.num_rows

    def commit(self) -> None:
        self.seal()
        self.file.publish()

    def seal(self) -> None:
        """The table's footer written and on disk, under the temporary name."""
        try:
            with output_errors(self.file.target):
                self.writer.close()
        except BaseException:
            self.file.abort()
            raise
        self.file.seal()

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

    Batches go to `table` (a TableFile) and error records to `errors` (an
    ErrorLog); FileSink and ShardedSink open them, StdoutSink overrides
    `_write` and `_error` instead. The base of every `records.Sink` here.
    """

    BATCH_ROWS = 64  # rows per Arrow record batch ...
    BATCH_BYTES = 16 << 20  # ... or fewer, once their pixels reach this size (a short tail to wait for at the end)
    resumed: Resumed | None = None  # only a shard folder keeps what an earlier run committed

    def __init__(self, schema: pa.Schema, table: TableFile | None = None, errors: ErrorLog | None = None):
        self.schema = schema
        self.table, self.errors = table, errors
        self.pending: list[CodedImage] = []
        self.pending_bytes = 0

    def skipper(self) -> Callable[[int, str], bool] | None:
        return None

    @property
    def bytes_written(self) -> int | None:
        return None

    def add_at(self, position: int, result: Result) -> None:
        self.add(result)

    def add(self, result: Result) -> None:
        """A CodedImage (a row) or a FailedImage (an error record)."""
        if isinstance(result, CodedImage):
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

    def _parts(self) -> tuple[TableFile, ErrorLog]:
        """The open table and error log: a sink has them from opening its file (or shard) until it commits."""
        if self.table is None or self.errors is None:
            raise RuntimeError("no output table is open")
        return self.table, self.errors

    def _write(self, batch: pa.RecordBatch) -> None:
        self._parts()[0].write(batch)

    def _error(self, record: dict) -> None:
        self._parts()[1].add(record)


class FileSink(RowSink):
    """Rows to one file, errors beside it in OUTPUT.errors.jsonl."""

    def __init__(self, target: str, schema: pa.Schema, compression: str | None, overwrite: bool = False):
        super().__init__(schema)
        self.target = Path(target)
        self.lock = TargetLock(lock_path(self.target), target)
        try:
            if not overwrite and os.path.lexists(self.target):  # another run finished it since check_target
                raise ConfigError(f"{target} already exists; pass {option('overwrite')} to replace it")
            ours = {temp_stem(p.name) for p in (self.target, errors_path(target))}
            remove_stale_partials(self.target.parent, lambda name: name in ours)
            self.table = TableFile(self.target, schema, output_format(target).name, compression)
            self.errors = ErrorLog(errors_path(target))
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        """Both files whole on disk first; then the old error log goes, the table moves in, its log last.

        A reader sees the old pair, a table with no error log (a commit cut
        short by a kill), or the new pair: never a table beside another run's log.
        """
        self.flush()
        table, errors = self._parts()
        table.seal()
        errors.file.seal()
        with output_errors(errors.file.target):
            errors.file.target.unlink(missing_ok=True)
        table.file.publish()
        errors.file.publish()
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
    if is_url(output):
        from .objectstore import is_folder

        return is_folder(output)
    return output != "-" and (output.endswith(("/", os.sep)) or Path(output).is_dir())


def remove_stale_partials(folder: Path, ours) -> None:
    """Delete temporary files that killed runs left behind (their process is gone).

    Only `.NAME.partial-PID` where ours(NAME) holds: temporaries of files this
    writer makes. A file whose PID is a live process that may have written it
    is left alone; a PID reused by a process started after the file was last
    written does not keep it (containers reuse small PIDs all the time).
    """
    for temp in folder.glob(".*.partial-*"):
        name, _, pid = temp.name[1:].rpartition(".partial-")
        if not ours(name) or not pid.isdigit():
            continue
        try:
            if not _may_be_writing(int(pid), temp.lstat().st_mtime):
                temp.unlink()
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            pass


def sweep_partials_of(output: str) -> None:
    """remove_stale_partials for the one local file `output` (an upload to a store leaves no partial to sweep)."""
    if not is_url(output):
        target = Path(output)
        remove_stale_partials(target.parent, lambda name: name == temp_stem(target.name))


def _may_be_writing(pid: int, modified: float) -> bool:
    """Whether process `pid` is alive and was already running when a file was last modified."""
    if pid == os.getpid():
        return False  # an earlier process of the same number: this one has not made the file yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    except OverflowError:
        return False
    started = _process_start(pid)
    return started is None or started <= modified + 2  # /proc gives the boot time in whole seconds


def _process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), from Linux's /proc; None where that is unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rpartition(b")")[2].split()
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in ticks since boot
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def not_a_folder(folder: str | Path, what: str, hint: str = "") -> None:
    """Refuse a folder output whose name an existing file (or a symlink to one) holds.

    overwrite does not help: it replaces pixelprune's outputs, and never turns a file into a folder.
    """
    path = Path(str(folder).rstrip("/" + os.sep) or "/")
    if os.path.lexists(path) and not path.is_dir():
        raise ConfigError(f"{folder} names {what}, but {path} is a file (even {option('overwrite')} never replaces "
                          f"a file with a folder); choose another name{hint}")


def check_target(output: str, overwrite: bool) -> None:
    """Refuse to replace an existing output unless asked (exit code 2, nothing touched)."""
    if output == "-":
        return
    if is_shard_folder(output):
        not_a_folder(output, "a folder of shards", f", or -o {output.rstrip('/' + os.sep)} for one file")
        return
    if is_url(output):
        from .objectstore import check_stored_target

        return check_stored_target(output, overwrite)  # a store has no parent folder to ask about
    path = Path(output)
    if os.path.lexists(path) and not overwrite:
        raise ConfigError(f"{output} already exists; pass {option('overwrite')} to replace it")
    if not path.parent.exists():
        raise ConfigError(f"folder {path.parent} does not exist")
