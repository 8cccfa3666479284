"""Run summaries: totals, per-image entries, the rich table and the JSON form.

Tables and JSON go to stdout (to stderr when stdout carries the Arrow stream);
progress goes to stderr and only to a terminal. Rich already drops colour when
the stream is not a TTY or NO_COLOR is set.
"""

from __future__ import annotations

import heapq
import json
import os
import pickle
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

TABLE_ROWS_MAX = 40  # above this, `--table auto` shows totals and the best/worst images


@dataclass
class ImageEntry:
    id: str
    source_size: tuple[int, int]
    size: tuple[int, int]
    tokens: int
    kept: int
    seconds: float | None  # None when read back from an output (not timed)
    tau: float = 0.0
    over_budget: bool = False

    @property
    def saved(self) -> float:
        return 1.0 - self.kept / self.tokens if self.tokens else 0.0

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "source_width": self.source_size[0],
            "source_height": self.source_size[1],
            "width": self.size[0],
            "height": self.size[1],
            "tokens": self.tokens,
            "kept": self.kept,
            "saved": round(self.saved, 6),
            "tau": self.tau,
            "seconds": None if self.seconds is None else round(self.seconds, 6),
            **({"over_budget": True} if self.over_budget else {}),
        }


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
        self.spool = None
        self.count = 0

    def append(self, item) -> None:
        self.count += 1
        if self.spool is None and len(self.items) < self.in_memory:
            self.items.append(item)
            return
        if self.spool is None:
            import tempfile

            self.spool = tempfile.TemporaryFile()
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
        out = []
        for item in self:
            if len(out) == n:
                break
            out.append(item)
        return out


class _Extremes:
    """The `n` entries with the smallest `saved` and the `n` with the largest, ties in input order (as a stable sort)."""

    def __init__(self, n: int = 5):
        self.n, self.least, self.most, self.position = n, [], [], 0

    def add(self, entry: ImageEntry) -> None:
        key = (entry.saved, self.position)
        self.position += 1
        heapq.heappush(self.least, ((-key[0], -key[1]), entry))  # a max-heap of the smallest keys
        if len(self.least) > self.n:
            heapq.heappop(self.least)
        heapq.heappush(self.most, (key, entry))  # a min-heap of the largest keys
        if len(self.most) > self.n:
            heapq.heappop(self.most)

    def ranked(self) -> tuple[list[ImageEntry], list[ImageEntry]]:
        least = [e for _, e in sorted(self.least, key=lambda item: (-item[0][0], -item[0][1]))]
        most = [e for _, e in sorted(self.most, key=lambda item: item[0])]
        return least, most


@dataclass
class Summary:
    """Everything a run reports, in memory that does not grow with the image count.

    Totals are counted as images arrive; the kept fractions are kept as 8-byte
    floats (exact quantiles); per-image entries (with their group values) and
    error records go to SpooledLists, which spill to disk past 10,000 each.
    """

    title: str = "pixelprune"
    config: dict = field(default_factory=dict)
    output: str | None = None
    skipped_files: int = 0
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    groups: list[dict] = field(default_factory=list)
    tokens: int = 0
    kept: int = 0
    over_budget: int = 0
    timed: bool = False  # whether any entry has a coding time (outputs read back have none)
    log: SpooledList = field(default_factory=SpooledList)  # (ImageEntry, group values) per written image
    error_log: SpooledList = field(default_factory=SpooledList)  # {id, stage, reason} per failed image
    extremes: _Extremes = field(default_factory=_Extremes)
    fractions: array = field(default_factory=lambda: array("d"))

    def add_image(self, entry: ImageEntry, group_values: dict | None = None) -> None:
        self.tokens += entry.tokens
        self.kept += entry.kept
        self.over_budget += bool(entry.over_budget)
        self.timed = self.timed or entry.seconds is not None
        if entry.tokens:
            self.fractions.append(entry.kept / entry.tokens)
        self.extremes.add(entry)
        self.log.append((entry, group_values or {}))

    def add_error(self, record: dict) -> None:
        self.error_log.append(record)

    @property
    def errors(self) -> list[dict]:
        """Every error record, in memory: for small runs and tests (reports stream `error_log`)."""
        return list(self.error_log)

    def finish(self) -> "Summary":
        self.seconds = time.perf_counter() - self.started
        return self

    def iter_entries(self) -> Iterator[ImageEntry]:
        """Every written image's entry, in input order (read back from disk for large runs)."""
        return (entry for entry, _ in self.log)

    @property
    def written(self) -> int:
        return len(self.log)

    @property
    def failed(self) -> int:
        return len(self.error_log)

    @property
    def images(self) -> int:
        return self.written + self.failed

    def kept_fraction_stats(self) -> dict:
        fractions = np.frombuffer(self.fractions, dtype=np.float64) if self.fractions else np.empty(0)
        if not fractions.size:
            return {}
        return {
            "mean": float(fractions.mean()),
            "median": float(np.median(fractions)),
            "p10": float(np.percentile(fractions, 10)),
            "p90": float(np.percentile(fractions, 90)),
        }

    def totals(self) -> dict:
        """The summary without its per-image entries and error records."""
        tokens, kept = self.tokens, self.kept
        return {
            "images": self.images,
            "written": self.written,
            "failed": self.failed,
            "skipped_files": self.skipped_files,
            "tokens": tokens,
            "kept": kept,
            "saved": round(1 - kept / tokens, 6) if tokens else 0.0,
            "over_budget": self.over_budget,
            "kept_fraction": self.kept_fraction_stats(),
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images / self.seconds, 2) if self.seconds else None,
            "output": self.output,
            "config": self.config,
            **self.extra,
            **({"groups": self.groups} if self.groups else {}),
        }

    def as_dict(self) -> dict:
        """The JSON summary, errors and per-image entries included (all in memory: for tests and small runs)."""
        return {**self.totals(), "errors": self.errors, "per_image": [e.as_dict() for e in self.iter_entries()]}


def print_json(summary: Summary, to_stderr: bool = False) -> None:
    """The JSON summary; its errors and per_image lists are streamed record by record (a run can have millions)."""
    stream = sys.stderr if to_stderr else sys.stdout
    head = json.dumps(summary.totals(), indent=2)
    stream.write(head[:-2])  # the object, reopened before its closing "\n}"
    for key, records in (("errors", summary.error_log), ("per_image", (e.as_dict() for e in summary.iter_entries()))):
        stream.write(f',\n  "{key}": [')
        empty = True
        for record in records:
            stream.write(("\n    " if empty else ",\n    ") + json.dumps(record))
            empty = False
        stream.write("]" if empty else "\n  ]")
    stream.write("\n}\n")


def _text(value):
    """A cell of the table: the value as plain text (no rich markup), terminal controls escaped."""
    from rich.text import Text

    from .errors import escape_controls

    return Text(escape_controls(str(value)))


def _size(wh: tuple[int, int]) -> str:
    return f"{wh[0]}x{wh[1]}"


def render_table(summary: Summary, mode: str = "auto", to_stderr: bool = False) -> None:
    """The per-image table (or best/worst images) and a totals row."""
    if mode == "none":
        return
    from rich.console import Console
    from rich.table import Table

    stream = sys.stderr if to_stderr else sys.stdout
    console = Console(stderr=to_stderr, highlight=False, width=None if stream.isatty() else 120)
    count = summary.written
    if mode == "auto":
        mode = "all" if count <= TABLE_ROWS_MAX else "summary"
    caption = None
    if mode == "summary" and count > 10:
        least, most = summary.extremes.ranked()
        shown = least + most
        caption = f"{count:,} images; showing the 5 that saved least and the 5 that saved most"
    elif mode == "summary":
        shown = sorted(summary.iter_entries(), key=lambda e: e.saved)
    else:
        shown = summary.iter_entries()
    table = Table(title=_text(summary.title), caption=caption, show_footer=False)
    for name, justify in (("id", "left"), ("source", "right"), ("resized", "right"), ("tokens", "right"),
                          ("kept", "right"), ("saved", "right"), ("time", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    for e in shown:
        table.add_row(_text(e.id + (" (over budget)" if e.over_budget else "")), _size(e.source_size), _size(e.size), f"{e.tokens:,}", f"{e.kept:,}",
                      f"{100 * e.saved:.1f}%", "-" if e.seconds is None else f"{1000 * e.seconds:.0f} ms")
    tokens, kept = summary.tokens, summary.kept
    rate = f"{summary.images / summary.seconds:.1f} img/s" if summary.seconds and summary.timed else ""
    table.add_section()
    table.add_row(f"total: {summary.written} image{'' if summary.written == 1 else 's'}", "", "", f"{tokens:,}", f"{kept:,}",
                  f"{100 * (1 - kept / tokens):.1f}%" if tokens else "-", rate, style="bold")
    console.print(table)
    if summary.groups:
        grouped = Table(title=_text(f"by {summary.groups[0]['column']}"))
        for name in ("value", "images", "tokens", "kept", "saved", "median kept"):
            grouped.add_column(name, justify="left" if name == "value" else "right")
        for g in summary.groups:
            grouped.add_row(_text(g["value"]), str(g["images"]), f"{g['tokens']:,}", f"{g['kept']:,}",
                            f"{100 * g['saved']:.1f}%", f"{100 * g['median_kept_fraction']:.1f}%")
        console.print(grouped)
    fractions = summary.kept_fraction_stats()
    if fractions:
        console.print("kept fraction per image: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in fractions.items()))
    budget = summary.extra.get("budget")
    if budget:
        needed = ", ".join(f"{k} {'> max-tau' if v is None else f'{v:.4f}'}" for k, v in budget["tau_needed"].items())
        console.print(f"budget {budget['budget']} tokens: {budget['fit_at_tau_0']} of {budget['images']} images fit at "
                      f"tau=0, {budget['fit_within_max_tau']} within max-tau, {budget['over_budget']} over budget; "
                      f"tau needed: {needed}")
    sampled = summary.extra.get("sample")
    if sampled:
        console.print(f"estimated from a uniform random sample of {sampled['images']:,} of {sampled['of']:,} images "
                      f"(seed {sampled['seed']})")
    if summary.extra.get("resumed_shards"):
        console.print(f"resumed: {summary.extra['resumed_shards']} shards from an earlier run kept "
                      f"({summary.extra['resumed_images']:,} images, {summary.extra['resumed_failed']:,} failed; "
                      "the table shows this run)")
    if summary.skipped_files:
        console.print(f"skipped {summary.skipped_files} non-image files")
    if summary.failed:
        errors = Table(title=f"{summary.failed} failed", title_style="bold red")
        for name in ("id", "stage", "reason"):
            errors.add_column(name, overflow="fold")
        for record in summary.error_log.head(TABLE_ROWS_MAX):
            errors.add_row(_text(record["id"]), record["stage"], _text(record["reason"]))
        console.print(errors)
        if summary.failed > TABLE_ROWS_MAX:
            console.print(f"... and {summary.failed - TABLE_ROWS_MAX} more (see the errors file or --json)")


def add_groups(summary: Summary, column: str) -> None:
    """Totals per value of `column` (a carried column, or 'folder': the id's first path part)."""
    buckets: dict = {}
    for entry, values in summary.log:
        if column == "folder":
            value = entry.id.split("/", 1)[0] if "/" in entry.id else "."
        else:
            value = values.get(column)
        if isinstance(value, (list, dict)):
            from .errors import ConfigError

            raise ConfigError(f"--group-by {column}: the column holds {type(value).__name__} values; "
                              "group by a column of single values (a string or a number)")
        bucket = buckets.setdefault(value, {"images": 0, "tokens": 0, "kept": 0, "fractions": array("d")})
        bucket["images"] += 1
        bucket["tokens"] += entry.tokens
        bucket["kept"] += entry.kept
        if entry.tokens:
            bucket["fractions"].append(entry.kept / entry.tokens)
    summary.groups = []
    for value, b in sorted(buckets.items(), key=lambda kv: str(kv[0])):
        fractions = np.frombuffer(b["fractions"], dtype=np.float64) if b["fractions"] else np.zeros(1)
        summary.groups.append({
            "column": column,
            "value": value,
            "images": b["images"],
            "tokens": b["tokens"],
            "kept": b["kept"],
            "saved": 1 - b["kept"] / b["tokens"] if b["tokens"] else 0.0,
            "median_kept_fraction": float(np.median(fractions)),
        })


class Progress:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, enabled: bool, description: str = "coding"):
        self.bar = None
        if enabled and sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), transient=True)
            self.task = self.bar.add_task(description, total=None, rate="")
            self.bar.start()
            self.started = time.perf_counter()
            self.count = 0

    def advance(self) -> None:
        if self.bar is not None:
            self.count += 1
            rate = self.count / max(1e-9, time.perf_counter() - self.started)
            self.bar.update(self.task, advance=1, rate=f"{rate:.1f} img/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
