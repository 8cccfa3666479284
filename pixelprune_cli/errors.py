"""Error types. Each kind of failure has its own class and a one-line message.

Per-image failures (ImageFailure) are recorded and the run goes on; input
failures (InputError) mean nothing could be enumerated and end the run with
exit code 2.
"""

from __future__ import annotations

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
