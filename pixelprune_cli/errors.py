"""Error types. Each kind of failure has its own class and a one-line message.

Per-image failures (ImageFailure) are recorded and the run goes on; input
failures (InputError) mean nothing could be enumerated and end the run with
exit code 2.
"""

from __future__ import annotations

import contextvars

# Set by the command line while a command runs: messages then name its flags (`--overwrite`);
# a Python caller reads the parameter to pass instead (`overwrite=True`).
COMMAND_LINE = contextvars.ContextVar("pixelprune_command_line", default=False)


def option(name: str, value=True, shown: str | None = None) -> str:
    """A parameter as the caller spells it: `--max-tau 0.1` on the command line, `max_tau=0.1` in Python.

    `shown` is the value as typed on the command line when it differs from the Python one (a list).
    """
    if COMMAND_LINE.get():
        flag = "--" + name.replace("_", "-")
        return flag if value is True else f"{flag} {value if shown is None else shown}"
    return f"{name}={value!r}"

STAGES = ("read", "decode", "resize", "code", "write")


class PixelpruneError(Exception):
    """Base of every error pixelprune reports to users."""


class InputError(PixelpruneError):
    """An input path or table that cannot be enumerated at all (exit code 2)."""


class ConfigError(PixelpruneError):
    """Options that contradict each other or an existing output (exit code 2)."""


class OutputError(PixelpruneError):
    """An output that cannot be written: a read-only place, a full disk (exit code 2).

    Raised after the temporary file is gone, so nothing partial is left under the output name.
    """


class ImageFailure(PixelpruneError):
    """One image that could not be processed; `stage` says where it failed."""

    def __init__(self, stage: str, reason: str):
        assert stage in STAGES, stage
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


class ReadFailure(ImageFailure):
    def __init__(self, reason: str):
        super().__init__("read", reason)


class DecodeFailure(ImageFailure):
    def __init__(self, reason: str):
        super().__init__("decode", reason)


class ResizeFailure(ImageFailure):
    def __init__(self, reason: str):
        super().__init__("resize", reason)


def one_line(exc: BaseException) -> str:
    """A single-line description of an exception for error reports."""
    printable = "".join(ch if ch.isprintable() else " " for ch in str(exc))
    text = " ".join(printable.split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def broken_pipe(exc: OSError) -> bool:
    """A closed pipe on stdout: Python's BrokenPipeError, or pyarrow's OSError for EPIPE (which has no errno)."""
    import errno

    return isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE or "Broken pipe" in str(exc)
