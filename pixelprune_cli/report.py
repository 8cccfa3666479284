"""Run summaries: totals, per-image entries, the rich table and the JSON form.

Tables and JSON go to stdout (to stderr when stdout carries the Arrow stream);
progress goes to stderr and only to a terminal. Rich already drops colour when
the stream is not a TTY or NO_COLOR is set.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import pickle
import sys
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from .records import Resumed

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
        self.spool: IO[bytes] | None = None
        self.count = 0

    def append(self, item) -> None:
        self.count += 1
        if self.spool is None and len(self.items) < self.in_memory:
            self.items.append(item)
            return
        if self.spool is None:
            import tempfile

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


class _Extremes:
    """The `n` entries with the smallest `saved` and the `n` with the largest, ties in input order (as a stable sort)."""

    def __init__(self, n: int = 5):
        self.n, self.position = n, 0
        self.least: list[tuple] = []  # (negated key, entry): a max-heap of the smallest keys
        self.most: list[tuple] = []  # (key, entry): a min-heap of the largest keys

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
    skipped_files: int = 0  # files and hidden entries a folder walk left out
    skipped_hidden: int = 0  # of which hidden (a name starting with '.')
    skipped: SpooledList | None = None  # their paths, hidden folders ending in '/'
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    resumed: Resumed | None = None  # a sharded output: what earlier runs committed (its failures decide the exit code too)
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

    def finish(self) -> Summary:
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
            "skipped_hidden": self.skipped_hidden,
            "tokens": tokens,
            "kept": kept,
            "saved": round(1 - kept / tokens, 6) if tokens else 0.0,
            "over_budget": self.over_budget,
            "kept_fraction": self.kept_fraction_stats(),
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images / self.seconds, 2) if self.seconds else None,
            "output": self.output,
            "config": self.config,
            **(self.resumed.as_extra() if self.resumed else {}),
            **self.extra,
            **({"groups": self.groups} if self.groups else {}),
        }

    def as_dict(self) -> dict:
        """The JSON summary, errors and per-image entries included (all in memory: for tests and small runs)."""
        return {**self.totals(), "errors": self.errors, "per_image": [e.as_dict() for e in self.iter_entries()],
                "skipped": list(self.skipped or [])}

    def take_skipped(self, counts) -> None:
        """The skipped files a plan counted (a sources.SourceCounts), and the Parquet columns images came from."""
        self.skipped_files, self.skipped_hidden, self.skipped = counts.skipped_files, counts.skipped_hidden, counts.skipped
        if counts.image_columns:
            self.extra["image_columns"] = dict(counts.image_columns)


def print_json(summary: Summary, to_stderr: bool = False) -> None:
    """The JSON summary; its errors and per_image lists are streamed record by record (a run can have millions)."""
    stream = sys.stderr if to_stderr else sys.stdout
    head = json.dumps(summary.totals(), indent=2)
    stream.write(head[:-2])  # the object, reopened before its closing "\n}"
    for key, records in (("errors", summary.error_log), ("per_image", (e.as_dict() for e in summary.iter_entries())),
                         ("skipped", summary.skipped or [])):
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


def shorten_middle(text: str, width: int, ellipsis: str = "\u2026") -> str:
    """text cut to `width` terminal cells by an ellipsis in the middle: both the folder and the file name stay readable.

    Widths are in cells, so ids in wide scripts (CJK: two cells a character) fit too.
    """
    from rich.cells import cell_len

    if cell_len(text) <= width:
        return text
    if width <= cell_len(ellipsis):
        return ellipsis[:width]

    def fitting(chars, room: int) -> str:
        taken, used = [], 0
        for ch in chars:
            if used + cell_len(ch) > room:
                break
            taken.append(ch)
            used += cell_len(ch)
        return "".join(taken)

    head = fitting(text, width // 2)
    tail = fitting(reversed(text), width - cell_len(ellipsis) - cell_len(head))[::-1]
    return head + ellipsis + tail


def encodable(text: str, encoding: str) -> str:
    """text with each character `encoding` cannot write (an ASCII or Latin-1 stdout) as an escape (\\u0449).

    Escaped before the table measures it, so its columns stay aligned.
    """
    try:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:  # an encoding Python does not know: the stream's own error handler decides
        return text


def _seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{1000 * seconds:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def describe_config(config: dict) -> str:
    """preset, backend, method, metric and tau (or the budget searched) in a few words, for titles."""
    if not config:
        return ""
    if config.get("budget") is not None:
        tau = f"budget {config['budget']:,} tokens, tau <= {config.get('max_tau', 0.1):g}"
    else:
        tau = f"tau {config.get('tau', 0):g}"
    return f"{config.get('preset', '?')}, {config.get('backend', 'pil')}, {config.get('method', '?')}, {config.get('metric', '?')}, {tau}"


def _console(to_stderr: bool):
    from rich.console import Console

    stream = sys.stderr if to_stderr else sys.stdout
    return Console(stderr=to_stderr, highlight=False, width=console_width(stream.isatty()))


SANE_COLUMNS = range(20, 4097)  # a COLUMNS outside this (0, -5, 10**8, "abc") is a mistake: read as 80


def console_width(terminal: bool) -> int | None:
    """Columns of the report: COLUMNS when it is sane, 80 when it is set but absurd; else the terminal's
    own width (None: rich measures it), or 120 when the report goes to a file or a pipe."""
    text = os.environ.get("COLUMNS")
    if text is not None and text.strip():
        try:
            columns = int(text)
        except ValueError:
            columns = 0
        return columns if columns in SANE_COLUMNS else 80
    return None if terminal else 120


def _table_style() -> dict:
    from rich import box

    return {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "collapse_padding": True}


def render_table(summary: Summary, mode: str = "auto", to_stderr: bool = False) -> None:
    """The per-image rows (all, the best/worst, or none), then totals and every notice.

    `none` drops only the per-image rows: totals, group-by, budget, sample
    estimate, skipped files and failures are always printed. Every column fits
    on one line: long ids are shortened in the middle to what the terminal
    leaves them.
    """
    from rich.cells import cell_len
    from rich.table import Table

    from .errors import escape_controls

    console = _console(to_stderr)
    count = summary.written
    if mode == "auto":
        mode = "all" if count <= TABLE_ROWS_MAX else "summary"
    caption = None
    shown: Iterable[ImageEntry]
    if mode == "none":
        shown = []
    elif mode == "summary" and count > 10:
        least, most = summary.extremes.ranked()
        shown = least + most
        caption = f"{count:,} images: the 5 that saved least, then the 5 that saved most"
    elif mode == "summary":
        shown = sorted(summary.iter_entries(), key=lambda e: e.saved)
    else:
        shown = summary.iter_entries()
    budgeted = summary.config.get("budget") is not None
    timed = summary.timed  # rows read back from an output have no coding time
    headers = ["id", "source", "resized", "tokens", "kept", "saved", *(("tau", "over") if budgeted else ()),
               *(("time",) if timed else ())]
    rows = []
    ellipsis = "\u2026" if encodable("\u2026", console.encoding) == "\u2026" else "..."
    for e in shown:
        rows.append([encodable(escape_controls(e.id), console.encoding), _size(e.source_size), _size(e.size), f"{e.tokens:,}", f"{e.kept:,}", f"{100 * e.saved:.1f}%",
                     *((f"{e.tau:.3g}", "over" if e.over_budget else "") if budgeted else ()),
                     *((_seconds(e.seconds),) if timed else ())])
    tokens, kept = summary.tokens, summary.kept
    label = "sample" if summary.extra.get("sample") else "total"  # the count is on the line below the table
    totals = [label, "", "", f"{tokens:,}", f"{kept:,}", f"{100 * (1 - kept / tokens):.1f}%" if tokens else "-",
              *(("", f"{summary.over_budget:,}" if summary.over_budget else "") if budgeted else ()),
              *(("",) if timed else ())]
    widths = [max(len(h), *(len(r[k]) for r in rows), len(totals[k]) if k else 0) for k, h in enumerate(headers)]
    # Columns are two spaces apart (collapsed padding, no edges); the id column gets what is left.
    room = console.width - sum(widths[1:]) - 2 * (len(headers) - 1)
    id_width = max(len(label), min(max([cell_len(r[0]) for r in rows] + [2]), room))
    title = f"{summary.title}: {describe_config(summary.config)}" if summary.config else summary.title
    table = Table(**_table_style())
    for k, name in enumerate(headers):
        table.add_column(name, justify="left" if k == 0 else "right", no_wrap=True, overflow="ellipsis",
                         min_width=id_width if k == 0 else None, max_width=id_width if k == 0 else None)
    for r in rows:
        table.add_row(_text(shorten_middle(r[0], id_width, ellipsis)), *r[1:])
    if rows:
        table.add_section()
    table.add_row(*totals, style="bold")
    console.print(_text(title), style="bold", overflow="ellipsis", no_wrap=True)  # above the table, never wrapped by it
    console.print(table)
    if caption:
        console.print(caption)
    rate = f" ({summary.images / summary.seconds:.1f} images/s)" if summary.seconds and summary.timed else ""
    if summary.timed:
        console.print(f"{_plural(summary.images, 'image')} in {summary.seconds:.1f} s{rate}")
    elif not summary.extra.get("sample"):
        console.print(_plural(summary.images, "image"))
    if summary.groups:
        column = summary.groups[0]["column"]
        grouped = Table(title=_text(f"by {column}"), **_table_style())
        for name in (column, "images", "tokens", "kept", "saved", "median kept"):
            grouped.add_column(name, justify="left" if name == column else "right", no_wrap=True, overflow="ellipsis")
        for g in summary.groups:
            grouped.add_row(_text(g["value"]), f"{g['images']:,}", f"{g['tokens']:,}", f"{g['kept']:,}",
                            f"{100 * g['saved']:.1f}%", f"{100 * g['median_kept_fraction']:.1f}%")
        console.print(grouped)
    fractions = summary.kept_fraction_stats()
    if fractions:
        console.print("kept fraction per image: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in fractions.items()))
    budget = summary.extra.get("budget")
    if budget:
        needed = ", ".join(f"{k} {'> max-tau' if v is None else f'{v:.4f}'}" for k, v in budget["tau_needed"].items())
        console.print(f"budget {budget['budget']:,} tokens: {budget['fit_at_tau_0']:,} of {budget['images']:,} images "
                      f"fit at tau 0, {budget['fit_within_max_tau']:,} within max-tau, {budget['over_budget']:,} over budget")
        console.print(f"tau needed: {needed}")
    elif summary.over_budget:
        console.print(f"over budget: {_plural(summary.over_budget, 'image')} kept more tokens than the budget at max-tau")
    sampled = summary.extra.get("sample")
    if sampled:
        console.print(describe_estimate(sampled))
    resumed = summary.resumed
    if resumed and resumed.shards:
        console.print(f"resumed: {resumed.shards} shards from an earlier run kept "
                      f"({resumed.images:,} images, {resumed.failed:,} failed; "
                      "the table shows this run)")
    if resumed and resumed.damaged:
        damaged = resumed.damaged
        console.print(f"redone: {len(damaged)} committed shards failed their size or checksum check "
                      f"({', '.join(map(str, damaged[:5]))}{', ...' if len(damaged) > 5 else ''})")
    columns = summary.extra.get("image_columns")
    if columns:
        console.print(_text("images from Parquet column " + ", ".join(
            f"{name!r} ({_plural(files, 'file')})" for name, files in columns.items())))
    skipped = describe_skipped(summary)
    if skipped:
        console.print(skipped)
    if summary.failed:
        errors = Table(title=f"{summary.failed} failed", title_style="bold red", **_table_style())
        for name in ("id", "stage", "reason"):
            errors.add_column(name, overflow="fold")
        shown_errors = summary.error_log.head(TABLE_ROWS_MAX if mode != "none" else 5)
        for record in shown_errors:
            errors.add_row(_text(record["id"]), record["stage"], _text(record["reason"]))
        console.print(errors)
        if summary.failed > len(shown_errors):
            console.print(f"... and {summary.failed - len(shown_errors)} more (see the errors file or --json)")


SKIPPED_NAMED = 5  # skipped files named in the table (--json lists all of them)


def describe_skipped(summary: Summary) -> str | None:
    """One line on the files a folder walk left out, naming the first few."""
    if not summary.skipped_files:
        return None
    names = summary.skipped.head(SKIPPED_NAMED) if summary.skipped is not None else []
    hidden = summary.skipped_hidden
    plain = summary.skipped_files - hidden
    parts = []
    if plain:
        parts.append("1 file that is not an image" if plain == 1 else f"{plain:,} files that are not images")
    if hidden:
        parts.append(f"{hidden:,} hidden (--hidden includes them)")
    more = summary.skipped_files - len(names)
    listing = ", ".join(names) + (f", and {more:,} more (--json lists all)" if more > 0 else "")
    return f"skipped {' and '.join(parts)}" + (f": {listing}" if names else "")


def describe_estimate(sampled: dict) -> str:
    """The sample's estimate for the whole input, with its 95% intervals, said to be an estimate."""
    line = (f"an estimate from a uniform random sample of {sampled['images']:,} of {sampled['of']:,} images "
            f"(seed {sampled['seed']})")
    estimate = sampled.get("estimate")
    if not estimate:
        return line

    def interval(name: str, percent: bool = False) -> str:
        value, low, high = (estimate[name][k] for k in ("value", "low", "high"))
        if percent:
            return f"{100 * value:.1f}% ({100 * low:.1f}-{100 * high:.1f}%)"
        return f"{value:,.0f} ({low:,.0f}-{high:,.0f})"

    return (f"estimated for all {sampled['of']:,} images from a random sample of {sampled['images']:,} "
            f"(seed {sampled['seed']}):\n  tokens {interval('tokens')}  (95% interval)\n  kept   {interval('kept')}"
            f"\n  saved  {interval('saved', True)}")


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


def _t_quantile_975(df: int) -> float:
    """Student's t 97.5% quantile (Cornish-Fisher expansion around 1.96; within 1% for df >= 3)."""
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def sample_estimate(summary: Summary, population: int) -> dict:
    """Totals for all `population` images estimated from the sampled ones in `summary`, with 95% intervals.

    The sample is uniform without replacement, so totals are N times the
    sample mean, with the finite-population correction (1 - n/N) on the
    variance; the saved fraction is a ratio of two such totals, its variance
    from the linearised residuals kept - r * tokens (the usual ratio
    estimator). Intervals use Student's t with n - 1 degrees of freedom.
    Failed images count as images with no tokens.
    """
    entries = list(summary.iter_entries())
    n = len(entries) + summary.failed
    tokens = np.array([e.tokens for e in entries] + [0] * summary.failed, dtype=np.float64)
    kept = np.array([e.kept for e in entries] + [0] * summary.failed, dtype=np.float64)
    correction = max(0.0, 1.0 - n / population) if population else 0.0
    z = _t_quantile_975(n - 1) if n > 1 else 0.0  # small samples: t rather than the normal quantile

    def total(values: np.ndarray) -> dict:
        spread = z * population * math.sqrt(correction * values.var(ddof=1) / n) if n > 1 else 0.0
        value = population * values.mean() if n else 0.0
        return {"value": value, "low": max(0.0, value - spread), "high": value + spread}

    ratio = kept.sum() / tokens.sum() if tokens.sum() else 0.0
    residuals = kept - ratio * tokens
    spread = (z * math.sqrt(correction * residuals.var(ddof=1) / n) / tokens.mean()
              if n > 1 and tokens.mean() else 0.0)
    saved = 1.0 - ratio
    return {"tokens": total(tokens), "kept": total(kept), "failed": total(np.r_[np.zeros(len(entries)), np.ones(summary.failed)]),
            "saved": {"value": saved, "low": max(0.0, saved - spread), "high": min(1.0, saved + spread)},
            "confidence": 0.95}


def format_bytes(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """A progress bar on stderr when it is a terminal (and NO_COLOR is unset); silent otherwise.

    `count/total`, the rate of this run, the time elapsed and, once the total
    is known (it may arrive later, from another thread: `set_total`), the
    estimated time left.
    """

    def __init__(self, enabled: bool, description: str = "coding", total: int | None = None, unit: str = "img"):
        self.bar = None
        self.total, self.unit = total, unit
        if enabled and sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                    TextColumn("{task.fields[eta]}"), transient=True)
            self.task = self.bar.add_task(description, total=total, rate="", eta="")
            self.bar.start()
            self.started = time.perf_counter()
            self.count = 0

    @property
    def active(self) -> bool:
        return self.bar is not None

    def set_total(self, total: int) -> None:
        self.total = total
        if self.bar is not None:
            self.bar.update(self.task, total=total)

    def advance(self, done: int | None = None) -> None:
        """One more item handled; `done` is how many of the total are finished when that is not the count (resume)."""
        if self.bar is None:
            return
        self.count += 1
        done = self.count if done is None else done
        rate = self.count / max(1e-9, time.perf_counter() - self.started)
        eta = ""
        if self.total is not None and rate > 0:
            eta = f"eta {format_duration(max(0, self.total - done) / rate)}"
        self.bar.update(self.task, completed=done, rate=f"{rate:.1f} {self.unit}/s", eta=eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
