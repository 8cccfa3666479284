"""The records that pass between stages, and the interface of the stage that stores them.

    sources --Item--> pipeline.process --CodedImage | FailedImage--> Sink --> report

A multi-image table row is an ImageRow in and a CodedRow out (row_coding.process_row).

Every stage imports its inputs and outputs from here, never from the stage
before or after it, so data flows one way and each boundary has one type.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from pixelprune_cli.coding.budget import BudgetResult


@dataclass
class Item:
    """One image to code: its id, a reader of its bytes, carried columns."""

    id: str
    read: Callable[..., bytes]  # read(max_bytes=preprocess.DEFAULT_MAX_IMAGE_BYTES)
    extra: dict = field(default_factory=dict)


@dataclass
class CodedImage:
    """One image's output row, as numpy arrays (the writer turns it into Arrow)."""

    id: str
    source_width: int
    source_height: int
    width: int
    height: int
    grid_thw: tuple[int, int, int]
    tokens: int
    kept: int
    tau: float
    kept_index: np.ndarray  # (kept,) int32
    index_map: np.ndarray  # (tokens,) int32
    pixels: np.ndarray  # (kept, merge^2 * 3 * patch^2) uint8
    extra: dict = field(default_factory=dict)  # carried columns (--keep-columns)
    seconds: float = 0.0
    over_budget: bool = False  # --budget not reachable within max_tau
    budget: BudgetResult | None = None  # the search behind tau, without its ref array

    def as_row(self) -> dict:
        """The row as `pyarrow.Table.to_pylist()` would give it."""
        return {
            "id": self.id,
            "source_width": self.source_width,
            "source_height": self.source_height,
            "width": self.width,
            "height": self.height,
            "grid_thw": list(self.grid_thw),
            "tokens": self.tokens,
            "kept": self.kept,
            "tau": self.tau,
            "kept_index": self.kept_index.tolist(),
            "index_map": self.index_map.tolist(),
            "pixels": [bytes(row) for row in self.pixels],
            **self.extra,
        }


@dataclass
class FailedImage:
    """An image that produced no row, with the stage that failed and why."""

    id: str
    stage: str
    reason: str
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"id": self.id, "stage": self.stage, "reason": self.reason}


@dataclass
class ImageRow:
    """One row of several images to code in order (a multi-image table's list cell): a reader per image."""

    id: str
    reads: list[Callable[..., bytes]]
    extra: dict = field(default_factory=dict)


@dataclass
class CodedRow:
    """A multi-image row's output: every image coded, in order (row_coding.process_row); one output row."""

    id: str
    images: list[CodedImage]
    extra: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        return sum(image.pixels.nbytes for image in self.images)


Result = CodedImage | CodedRow | FailedImage  # what coding one input position gives


@dataclass(frozen=True)
class Resumed:
    """What earlier runs committed to a sharded output that this run keeps: part of the output, not of the run."""

    shards: int = 0
    images: int = 0
    failed: int = 0
    damaged: tuple[str, ...] = ()  # committed shards that failed their size or checksum check, redone

    def as_extra(self) -> dict:
        """The summary's JSON keys for it."""
        extra: dict[str, int | list[str]] = {"resumed_shards": self.shards, "resumed_images": self.images, "resumed_failed": self.failed}
        if self.damaged:
            extra["damaged_shards"] = list(self.damaged)
        return extra


class Sink(Protocol):
    """Where results go, one per input position, in input order (writer.FileSink, StdoutSink, ShardedSink).

    A run calls `add_at` for every position it codes, then exactly one of
    `commit` (the output becomes visible under its name) or `abort` (nothing
    partial is left under it).
    """

    resumed: Resumed | None  # what an earlier run committed and this one keeps (None: a sink that never resumes)

    def add_at(self, position: int, result: Result) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...

    def skipper(self) -> Callable[[int, str], bool] | None:
        """skip(position, id): True for inputs already in the output, not to be read again; None: skip nothing."""
        ...

    @property
    def bytes_written(self) -> int | None:
        """Bytes sent where nothing can be measured afterwards (a pipe); None for files, measured on disk."""
        ...


class SpooledList:
    """A list that is only appended to and read through: in memory up to `in_memory` items, then on disk.

    A run over millions of images must not hold a Python object per image.
    Past `in_memory` items they are pickled to an unnamed temporary file
    (gone when closed or when the process dies), about 200 bytes per image
    entry, and read back only for what needs every one (`--json`,
    `--table all`, `--group-by`).
    """

    def __init__(self, in_memory: int = 10_000):
        self.in_memory = in_memory
        self.items: list = []
        self.spool: IO[bytes] | None = None
        self.count = 0

    def append(self, item) -> None:
        self.count += 1
        if self.spool is None and len(self.items) < self.in_memory:
            self.items.append(item)
            return
        if self.spool is None:
            self.spool = tempfile.TemporaryFile()  # noqa: SIM115 (open for the list's life, read back many times)
            for held in self.items:
                pickle.dump(held, self.spool, protocol=pickle.HIGHEST_PROTOCOL)
            self.items = []
        pickle.dump(item, self.spool, protocol=pickle.HIGHEST_PROTOCOL)

    def __iter__(self) -> Iterator:
        if self.spool is None:
            yield from list(self.items)
            return
        count, end = self.count, self.spool.tell()
        self.spool.seek(0)
        try:  # appends must wait until the reading is done (nothing appends while a report is drawn)
            for _ in range(count):
                yield pickle.load(self.spool)
        finally:
            self.spool.seek(end)

    def __len__(self) -> int:
        return self.count

    def head(self, n: int) -> list:
        out: list = []
        for item in self:
            if len(out) == n:
                break
            out.append(item)
        return out
