"""Error types. Each kind of failure has its own class and a one-line message.

Per-image failures (ImageFailure) are recorded and the run goes on; input
failures (InputError) mean nothing could be enumerated and end the run with
exit code 2.
"""

from __future__ import annotations

import contextvars
import re
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pixelprune_cli.records import FailedImage

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


class ConfigError(PixelpruneError, ValueError):
    """Options that are out of range, contradict each other or an existing output (exit code 2).

    Also a ValueError, as the API raised for bad arguments before this class existed.
    """


class BadImage(PixelpruneError, ValueError):
    """prune_image: the one image it was given failed; the message names it and the stage (`stage`).

    Also a ValueError, as prune_image raised before this class existed.
    """

    def __init__(self, message: str, stage: str):
        super().__init__(message)
        self.stage = stage


class BadRow(PixelpruneError, ValueError):
    """A row given to model_inputs or a collator that is not a pixelprune output row of that preset.

    Also a ValueError, as model_inputs raised before this class existed.
    """


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


# Control characters (C0, C1, DEL), lone surrogates (bytes of a name that are not UTF-8) and
# bidirectional overrides: printed as they are, they would drive the terminal or reorder text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """text with every character a terminal would act on written as a visible escape (\\x1b, \\u202e)."""
    def visible(match):
        ch = match.group()
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as Python's surrogateescape hands it over
            return f"\\x{code - 0xDC00:02x}"
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

    return _UNSAFE.sub(visible, text)


class StoreUnavailable(PixelpruneError):
    """The store cannot be reached (or keeps failing) after retries: the run stops, committed shards stay for --resume.

    Not an image failure: an image that could not be fetched from a dead
    store is not a bad image, and must not be recorded as one.
    """

    exit_code = 2


class ImageFailedFast(PixelpruneError):
    """--fail-fast: the first failed image stops the run and no output is kept (exit code 1)."""

    exit_code = 1

    def __init__(self, failed: FailedImage):
        super().__init__(f"{failed.id}: {failed.stage} failed: {failed.reason} (stopped by {option('fail_fast')}; the output was not completed)")


class RayJobError(PixelpruneError):
    """The Ray job itself failed (not one image): committed shards stay for --resume."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGQUIT, handled like Ctrl-C so that temporary files are removed."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__()
        self.signum = int(signum)
