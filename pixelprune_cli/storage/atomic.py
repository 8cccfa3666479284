"""Files that appear whole or not at all: temporary names, the rename commit, locks, and sweeping up after killed runs.

A file is written under `.NAME.partial-PID` beside its target and renamed
into place when complete (`AtomicFile`), so a reader never sees a partial file
under the final name. `TargetLock` keeps a second run off an output. What this
process holds (temporaries, locks) is listed with `hold`, so an interrupt
releases it; the next run removes the temporaries of dead processes
(`remove_stale_partials`). Local files only: a store has no rename
(objectstore.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from pixelprune_cli.errors import ConfigError, OutputError, broken_pipe, one_line
from pixelprune_cli.storage.urls import is_url


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


def write_file(path, write) -> None:
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
    """Whether process `pid` is alive and was already running when a file was last modified.

    A zombie (state Z, or X while it is reaped) is dead: it has closed its files and
    will write nothing more, though `kill(pid, 0)` still finds it where PID 1 does
    not reap (many containers).
    """
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
    state, started = _process_state(pid)
    if state in (b"Z", b"X"):
        return False
    return started is None or started <= modified + 2  # /proc gives the boot time in whole seconds


def _process_state(pid: int) -> tuple[bytes | None, float | None]:
    """(state letter, start time in seconds since the epoch) of process `pid`, from Linux's /proc; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rpartition(b")")[2].split()  # after the name, which may hold spaces and ')'
    except OSError:
        return None, None
    state = fields[0] if fields else None
    try:
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime "))
        return state, boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in ticks since boot
    except (OSError, ValueError, IndexError, StopIteration):
        return state, None
