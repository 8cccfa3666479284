"""Local spool folders, where files wait on their way to a store, and sweeping those that killed runs left.

A spool folder is `$TMPDIR/pixelprune-spool-PID-*`. The next run that spools
removes the folders whose process is dead, with the same test as the local
partial files (atomic): a pid that a process started after the folder was
last written to now holds is no proof of life (containers reuse small pids).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from pixelprune_cli.storage.atomic import _may_be_writing

PREFIX = "pixelprune-spool-"


def spool_dir() -> str:
    """A private local folder for files on their way to a store (removed by whoever made it)."""
    remove_dead_spools(tempfile.gettempdir())
    return tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")


def remove_dead_spools(folder: str) -> None:
    """Remove the spool folders in `folder` of processes that are gone; never this process's own."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid, _, rest = name.removeprefix(PREFIX).partition("-")
        if not name.startswith(PREFIX) or not pid.isdigit() or not rest or int(pid) == os.getpid():
            continue
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path) and not _may_be_writing(int(pid), os.lstat(path).st_mtime):
                shutil.rmtree(path, ignore_errors=True)
        except OSError:  # gone meanwhile: nothing to do
            pass
