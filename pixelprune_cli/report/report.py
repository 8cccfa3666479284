"""The run report drawn for people: the rich table, its notices, and the progress bar.

It reads a `summary.Summary` and prints it; what is counted, and the JSON
form, live in `summary`. Tables go to stdout (to stderr when stdout carries
the Arrow stream); progress goes to stderr and only to a terminal. Rich
already drops colour when the stream is not a TTY or NO_COLOR is set.

rich is imported inside the functions that draw: `pixelprune --help` and runs
with `--json` start without loading it (about 0.1 s).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence

from pixelprune_cli.errors import escape_controls
from pixelprune_cli.report.summary import ImageEntry, Sample, Summary

TABLE_ROWS_MAX = 40  # above this, `--table auto` shows totals and the best/worst images


def _text(value):
    """A cell of the table: the value as plain text (no rich markup), terminal controls escaped."""
    from rich.text import Text

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

    class PipeAwareConsole(Console):
        def on_broken_pipe(self) -> None:
            """A closed pipe (`| head -1`) stays a BrokenPipeError, which the CLI ends with exit 141 as for any
            output; rich's own handling exits 1, the code for a failed image."""
            self.quiet = True
            raise BrokenPipeError(32, "Broken pipe")

    stream = sys.stderr if to_stderr else sys.stdout
    return PipeAwareConsole(stderr=to_stderr, highlight=False, width=console_width(stream.isatty()))


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


def render_rows(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A titled table of text cells on stdout (the first column left-aligned, the rest right), in the run table's style."""
    from rich.table import Table

    table = Table(title=title, **_table_style())
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    _console(False).print(table)


def render_table(summary: Summary, mode: str = "auto", to_stderr: bool = False) -> None:
    """The per-image rows (all, the best/worst, or none), then totals and every notice.

    `none` drops only the per-image rows: totals, group-by, budget, sample
    estimate, skipped files and failures are always printed. Every column fits
    on one line: long ids are shortened in the middle to what the terminal
    leaves them.
    """
    from rich.cells import cell_len
    from rich.table import Table

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
    label = "sample" if summary.sample else "total"  # the count is on the line below the table
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
    elif not summary.sample:
        console.print(_plural(summary.images, "image"))
    if summary.rows is not None:  # a multi-image output: entries are images, failures whole rows
        console.print(f"{_plural(summary.rows, 'row')} of {_plural(summary.written, 'image')} written, "
                      f"{_plural(summary.failed, 'row')} failed (a row fails with any of its images)")
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
    budget = summary.budget
    if budget:
        needed = ", ".join(f"{k} {'> max-tau' if v is None else f'{v:.4f}'}" for k, v in budget["tau_needed"].items())
        console.print(f"budget {budget['budget']:,} tokens: {budget['fit_at_tau_0']:,} of {budget['images']:,} images "
                      f"fit at tau 0, {budget['fit_within_max_tau']:,} within max-tau, {budget['over_budget']:,} over budget")
        console.print(f"tau needed: {needed}")
    elif summary.over_budget:
        console.print(f"over budget: {_plural(summary.over_budget, 'image')} kept more tokens than the budget at max-tau")
    if summary.sample:
        console.print(describe_estimate(summary.sample))
    resumed = summary.resumed
    if resumed and resumed.shards:
        console.print(f"resumed: {resumed.shards} shards from an earlier run kept "
                      f"({resumed.images:,} images, {resumed.failed:,} failed; "
                      "the table shows this run)")
    if resumed and resumed.damaged:
        damaged = resumed.damaged
        console.print(f"redone: {len(damaged)} committed shards failed their size or checksum check "
                      f"({', '.join(map(str, damaged[:5]))}{', ...' if len(damaged) > 5 else ''})")
    columns = summary.image_columns
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


def describe_estimate(sampled: Sample) -> str:
    """The sample's estimate for the whole input, with its 95% intervals, said to be an estimate."""
    line = (f"an estimate from a uniform random sample of {sampled.images:,} of {sampled.of:,} images "
            f"(seed {sampled.seed})")
    estimate = sampled.estimate
    if not estimate:
        return line

    def interval(name: str, percent: bool = False) -> str:
        value, low, high = (estimate[name][k] for k in ("value", "low", "high"))
        if percent:
            return f"{100 * value:.1f}% ({100 * low:.1f}-{100 * high:.1f}%)"
        return f"{value:,.0f} ({low:,.0f}-{high:,.0f})"

    return (f"estimated for all {sampled.of:,} images from a random sample of {sampled.images:,} "
            f"(seed {sampled.seed}):\n  tokens {interval('tokens')}  (95% interval)\n  kept   {interval('kept')}"
            f"\n  saved  {interval('saved', True)}")


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
    estimated time left. Until then, with `listing` (the inputs being
    counted), it says what it is doing: `listing photos/: 120 files`, never an
    open-ended `0/?`.
    """

    def __init__(self, enabled: bool, description: str = "coding", total: int | None = None, unit: str = "img",
                 listing: list[str] | None = None):
        self.bar = None
        self.total, self.unit, self.description = total, unit, description
        self.listing = listing_label(listing) if listing and total is None else None
        if enabled and sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(bar_width=24), _count_column(),
                                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                    TextColumn("{task.fields[eta]}"), transient=True)
            first = description if self.listing is None else f"listing {self.listing}"
            self.task = self.bar.add_task(first, total=total, rate="", eta="")
            self.bar.start()
            self.started = time.perf_counter()
            self.count = 0

    def found(self, count: int, noun: str) -> None:
        """While the total is being counted: how many `noun`s (files, images) the listing has found so far."""
        if self.bar is not None and self.listing is not None and self.total is None:
            self.bar.update(self.task, description=f"listing {self.listing}: {count:,} {noun}")

    def set_total(self, total: int) -> None:
        self.total = total
        if self.bar is not None:
            self.bar.update(self.task, total=total, description=self.description)

    @property
    def active(self) -> bool:
        return self.bar is not None

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


def listing_label(inputs: list[str]) -> str:
    """What a listing goes through, in a few words: the one input's name, or how many inputs."""
    from pixelprune_cli.storage.urls import redact

    return escape_controls(redact(inputs[0])) if len(inputs) == 1 else f"{len(inputs):,} inputs"


def _count_column():
    """`done/total` once the total is known; until then the count alone, and nothing before the first."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class CountColumn(ProgressColumn):
        def render(self, task) -> Text:
            done = int(task.completed)
            if task.total is None:
                return Text(f"{done}" if done else "", style="progress.download")
            return Text(f"{done}/{int(task.total)}", style="progress.download")

    return CountColumn()
