"""Run summaries: totals, per-image entries, the rich table and the JSON form.

Tables and JSON go to stdout (to stderr when stdout carries the Arrow stream);
progress goes to stderr and only to a terminal. Rich already drops colour when
the stream is not a TTY or NO_COLOR is set.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field

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


@dataclass
class Summary:
    """Everything a run reports. Per-image entries are small (about 150 bytes each)."""

    title: str = "pixelprune"
    config: dict = field(default_factory=dict)
    output: str | None = None
    entries: list[ImageEntry] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    skipped_files: int = 0
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    group_values: list[dict] = field(default_factory=list)  # carried columns per entry, for --group-by
    groups: list[dict] = field(default_factory=list)

    def add_image(self, entry: ImageEntry) -> None:
        self.entries.append(entry)

    def add_error(self, record: dict) -> None:
        self.errors.append(record)

    def finish(self) -> "Summary":
        self.seconds = time.perf_counter() - self.started
        return self

    @property
    def written(self) -> int:
        return len(self.entries)

    @property
    def failed(self) -> int:
        return len(self.errors)

    @property
    def images(self) -> int:
        return self.written + self.failed

    @property
    def tokens(self) -> int:
        return sum(e.tokens for e in self.entries)

    @property
    def kept(self) -> int:
        return sum(e.kept for e in self.entries)

    def kept_fraction_stats(self) -> dict:
        fractions = np.array([e.kept / e.tokens for e in self.entries if e.tokens], dtype=np.float64)
        if not fractions.size:
            return {}
        return {
            "mean": float(fractions.mean()),
            "median": float(np.median(fractions)),
            "p10": float(np.percentile(fractions, 10)),
            "p90": float(np.percentile(fractions, 90)),
        }

    def as_dict(self) -> dict:
        tokens, kept = self.tokens, self.kept
        return {
            "images": self.images,
            "written": self.written,
            "failed": self.failed,
            "skipped_files": self.skipped_files,
            "tokens": tokens,
            "kept": kept,
            "saved": round(1 - kept / tokens, 6) if tokens else 0.0,
            "over_budget": sum(e.over_budget for e in self.entries),
            "kept_fraction": self.kept_fraction_stats(),
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images / self.seconds, 2) if self.seconds else None,
            "output": self.output,
            "config": self.config,
            **self.extra,
            **({"groups": self.groups} if self.groups else {}),
            "errors": self.errors,
            "per_image": [e.as_dict() for e in self.entries],
        }


def print_json(summary: Summary, to_stderr: bool = False) -> None:
    stream = sys.stderr if to_stderr else sys.stdout
    json.dump(summary.as_dict(), stream, indent=2)
    stream.write("\n")


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
    entries = summary.entries
    if mode == "auto":
        mode = "all" if len(entries) <= TABLE_ROWS_MAX else "summary"
    caption = None
    if mode == "summary" and len(entries) > 10:
        ranked = sorted(entries, key=lambda e: e.saved)
        shown = ranked[:5] + ranked[-5:]
        caption = f"{len(entries)} images; showing the 5 that saved least and the 5 that saved most"
    elif mode == "summary":
        shown = sorted(entries, key=lambda e: e.saved)
    else:
        shown = entries
    table = Table(title=summary.title, caption=caption, show_footer=False)
    for name, justify in (("id", "left"), ("source", "right"), ("resized", "right"), ("tokens", "right"),
                          ("kept", "right"), ("saved", "right"), ("time", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    for e in shown:
        table.add_row(e.id + (" (over budget)" if e.over_budget else ""), _size(e.source_size), _size(e.size), f"{e.tokens:,}", f"{e.kept:,}",
                      f"{100 * e.saved:.1f}%", "-" if e.seconds is None else f"{1000 * e.seconds:.0f} ms")
    tokens, kept = summary.tokens, summary.kept
    timed = any(e.seconds is not None for e in entries)
    rate = f"{summary.images / summary.seconds:.1f} img/s" if summary.seconds and timed else ""
    table.add_section()
    table.add_row(f"total: {summary.written} image{'' if summary.written == 1 else 's'}", "", "", f"{tokens:,}", f"{kept:,}",
                  f"{100 * (1 - kept / tokens):.1f}%" if tokens else "-", rate, style="bold")
    console.print(table)
    if summary.groups:
        grouped = Table(title=f"by {summary.groups[0]['column']}")
        for name in ("value", "images", "tokens", "kept", "saved", "median kept"):
            grouped.add_column(name, justify="left" if name == "value" else "right")
        for g in summary.groups:
            grouped.add_row(str(g["value"]), str(g["images"]), f"{g['tokens']:,}", f"{g['kept']:,}",
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
    if summary.extra.get("resumed_shards"):
        console.print(f"resumed: {summary.extra['resumed_shards']} shards from an earlier run kept "
                      f"({summary.extra['resumed_images']:,} images, {summary.extra['resumed_failed']:,} failed; "
                      "the table shows this run)")
    if summary.skipped_files:
        console.print(f"skipped {summary.skipped_files} non-image files")
    if summary.errors:
        errors = Table(title=f"{summary.failed} failed", title_style="bold red")
        for name in ("id", "stage", "reason"):
            errors.add_column(name, overflow="fold")
        for record in summary.errors[:TABLE_ROWS_MAX]:
            errors.add_row(record["id"], record["stage"], record["reason"])
        console.print(errors)
        if summary.failed > TABLE_ROWS_MAX:
            console.print(f"... and {summary.failed - TABLE_ROWS_MAX} more (see the errors file or --json)")


def add_groups(summary: Summary, column: str) -> None:
    """Totals per value of `column` (a carried column, or 'folder': the id's first path part)."""
    buckets: dict = {}
    for i, entry in enumerate(summary.entries):
        if column == "folder":
            value = entry.id.split("/", 1)[0] if "/" in entry.id else "."
        else:
            value = summary.group_values[i].get(column) if i < len(summary.group_values) else None
        buckets.setdefault(value, []).append(entry)
    summary.groups = []
    for value, entries in sorted(buckets.items(), key=lambda kv: str(kv[0])):
        tokens = sum(e.tokens for e in entries)
        kept = sum(e.kept for e in entries)
        summary.groups.append({
            "column": column,
            "value": value,
            "images": len(entries),
            "tokens": tokens,
            "kept": kept,
            "saved": 1 - kept / tokens if tokens else 0.0,
            "median_kept_fraction": float(np.median([e.kept / e.tokens for e in entries if e.tokens] or [0.0])),
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
