"""What a run counts: per-image entries, totals, the JSON form. The report module draws it.

A Summary holds, in memory that does not grow with the image count, what
every command reports; each thing only some runs have (a sample, a budget
search, a note that the output is incomplete) is a typed field, set by the
code that produces it. `print_json` writes it to stdout (stderr when stdout
carries the Arrow stream); `report.render_table` draws it.
"""

from __future__ import annotations

import heapq
import json
import math
import sys
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pixelprune_cli.errors import ConfigError
from pixelprune_cli.records import Resumed, SpooledList

if TYPE_CHECKING:
    from pixelprune_cli.coding.budget import BudgetReport


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
class Sample:
    """stats --sample: `images` drawn uniformly (seeded) from `of`, and what they estimate for all of them."""

    images: int
    of: int
    seed: int = 0
    estimate: dict | None = None  # sample_estimate's totals with their 95% intervals

    def as_dict(self) -> dict:
        return {"images": self.images, "of": self.of, "seed": self.seed,
                **({"estimate": self.estimate} if self.estimate is not None else {})}


@dataclass(frozen=True)
class WrittenBytes:
    """What a compress or restore left at its output, in bytes; None when it went down a pipe (not measurable)."""

    size: int | None


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
    errors_file: str | None = None  # compress: where its error log is (decided with the output's target), redacted
    skipped_files: int = 0  # files and hidden entries a folder walk left out
    skipped_hidden: int = 0  # of which hidden (a name starting with '.')
    skipped: SpooledList | None = None  # their paths, hidden folders ending in '/'
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    engine: str | None = None  # set by an engine other than the local one ("ray")
    incomplete: str | None = None  # the output read is not whole (readers.incomplete_note): warned on stderr too
    sample: Sample | None = None  # stats --sample: the images are a sample of a larger input
    budget: BudgetReport | None = None  # stats --budget: how the images fit the token budget
    image_columns: dict[str, int] = field(default_factory=dict)  # Parquet column the images came from: files
    bytes_written: WrittenBytes | None = None  # compress, restore: what the output takes
    resumed: Resumed | None = None  # a sharded output: what earlier runs committed (its failures decide the exit code too)
    groups: list[dict] = field(default_factory=list)
    rows: int | None = None  # multi-image rows written (None: one image per row); entries and tokens count images
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

    def add_row(self, entries: list[ImageEntry], group_values: dict | None = None) -> None:
        """A multi-image row written: an entry per image; a failed row is one error record (add_error)."""
        self.rows = (self.rows or 0) + 1
        for entry in entries:
            self.add_image(entry, group_values)

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
            **({"engine": self.engine} if self.engine else {}),
            **({"incomplete": self.incomplete} if self.incomplete else {}),
            **({"sample": self.sample.as_dict()} if self.sample else {}),
            **({"budget": self.budget} if self.budget else {}),
            **({"image_columns": dict(self.image_columns)} if self.image_columns else {}),
            **({"bytes_written": self.bytes_written.size} if self.bytes_written else {}),
            **({"groups": self.groups} if self.groups else {}),
            **({"rows_written": self.rows} if self.rows is not None else {}),
        }

    def as_dict(self) -> dict:
        """The JSON summary, errors and per-image entries included (all in memory: for tests and small runs)."""
        return {**self.totals(), "errors": self.errors, "per_image": [e.as_dict() for e in self.iter_entries()],
                "skipped": list(self.skipped or [])}

    def take_skipped(self, counts) -> None:
        """The skipped files a plan counted (a sources.SourceCounts), and the Parquet columns images came from."""
        self.skipped_files, self.skipped_hidden, self.skipped = counts.skipped_files, counts.skipped_hidden, counts.skipped
        self.image_columns = dict(counts.image_columns)


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


def add_groups(summary: Summary, column: str) -> None:
    """Totals per value of `column` (a carried column, or 'folder': the id's first path part)."""
    buckets: dict = {}
    for entry, values in summary.log:
        if column == "folder":
            value = entry.id.split("/", 1)[0] if "/" in entry.id else "."
        else:
            value = values.get(column)
        if isinstance(value, (list, dict)):
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
