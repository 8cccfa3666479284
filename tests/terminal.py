"""Run the command line on a real pseudo-terminal (the `pty` module), so the child asks the terminal itself."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios


def run_in_terminal(args, env: dict, columns: int = 80, rows: int = 40, stdout_pipe: bool = False,
                    cwd=None) -> tuple[int, bytes, bytes]:
    """`python -m pixelprune_cli ARGS` with stderr (and stdout unless `stdout_pipe`) on a pseudo-terminal of
    `columns` x `rows`; returns (exit code, what the terminal received, stdout bytes when piped)."""
    import pty

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "pixelprune_cli", *map(str, args)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE if stdout_pipe else follower, stderr=follower, env=env,
                               close_fds=True, cwd=cwd)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    piped = process.stdout.read() if stdout_pipe else b""
    return process.wait(timeout=300), b"".join(chunks), piped
