"""Command line: a thin layer that parses options and calls the Python API.

Heavy modules (numpy, numba, pyarrow) are imported inside the commands so that
`pixelprune --help` answers at once.

Exit codes: 0 every image done, 1 some images failed (the rest written),
2 usage error or no input could be read, 128 + N stopped by signal N after
cleaning up (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP, 131 SIGQUIT), 141 the reader
of stdout went away before everything was written (a broken pipe).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import click

from . import __version__
from .errors import ConfigError, escape_controls, one_line
from .formats import TABLE_FORMATS
from .presets import BACKENDS, DEFAULT_BACKEND, DEFAULT_PRESET, METHODS, METRICS, PRESETS

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143  # 128 + SIGINT, SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose pipe closed


def coder_options(fn):
    """Options that decide the tokens: preset, its overrides, method, metric, tau."""
    options = [
        click.option("--preset", type=click.Choice(list(PRESETS)), default=DEFAULT_PRESET, show_default=True,
                     help="Model whose image processor to reproduce."),
        click.option("--backend", type=click.Choice(BACKENDS), default=DEFAULT_BACKEND, show_default=True,
                     help="Processor to match: pil (Qwen2VLImageProcessorPil), torchvision (Qwen2VLImageProcessor, "
                          "AutoProcessor's default with torchvision; needs pixelprune[torchvision]), qwen-vl-utils "
                          "(fetch_image: no EXIF orientation, its own pixel bounds)."),
        click.option("--patch-size", type=click.IntRange(min=1), help="Override the preset's patch size."),
        click.option("--merge-size", type=click.IntRange(min=1), help="Override the preset's merge size."),
        click.option("--min-pixels", type=click.IntRange(min=1), help="Override the preset's min_pixels."),
        click.option("--max-pixels", type=click.IntRange(min=1), help="Override the preset's max_pixels."),
        click.option("--method", type=click.Choice(METHODS), default=METHODS[0],
                     show_default=True, help="Predictor: LOCO-I 2-D edge rule, or a 1-D scan."),
        click.option("--metric", type=click.Choice(METRICS), default=METRICS[0], show_default=True,
                     help="Per-token error measure for --tau."),
        click.option("--tau", type=click.FloatRange(min=0.0, max=1.0), default=0.0, show_default=True,
                     help="Allowed per-token error in [0,1] units; 0 is pixel-lossless."),
        click.option("--max-image-pixels", type=click.IntRange(min=1), default=1 << 26, show_default=True,
                     help="Refuse images larger than this before decoding them (decompression bombs)."),
        click.option("--max-image-bytes", type=click.IntRange(min=1), default=1 << 29, show_default=True,
                     help="Read at most this many bytes of one image file or cell; larger ones fail."),
        click.option("--budget", type=click.IntRange(min=1),
                     help="Keep at most N merged tokens per image: code with the smallest tau <= --max-tau that fits."),
        click.option("--max-tau", type=click.FloatRange(min=0.0, max=1.0), default=0.1, show_default=True,
                     help="Largest tau --budget may use; images that still do not fit are flagged over budget."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def source_options(fn):
    options = [
        click.option("--image-column", help="Parquet column holding the images (default: found from the schema)."),
        click.option("--keep-columns", default="", help="Comma-separated Parquet columns to carry into the output."),
        click.option("--workers", "-j", type=click.IntRange(min=1), help="Worker threads [default: all cores]."),
        click.option("--hidden", is_flag=True, help="Also read hidden files and folders (.git/, .cache/, ...) inside "
                     "folders; they are skipped and counted by default."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def report_options(fn):
    options = [
        click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary on stdout."),
        click.option("--table", type=click.Choice(["auto", "all", "summary", "none"]), default="auto",
                     show_default=True, help="Per-image rows: all, the 5 best and 5 worst, or none; totals, "
                     "notices and failures are always printed."),
        click.option("--no-progress", is_flag=True, help="Never show the progress line (count/total, rate, time left)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _fail(message: str, code: int = EXIT_USAGE):
    from .storage import redact

    try:
        click.echo(f"pixelprune: error: {escape_controls(redact(message))}", err=True)  # no user:secret@ ever
    except OSError:  # stderr on a full disk or gone: the exit code is all that is left to say it
        pass
    sys.exit(code)


def _tell(message: str) -> None:
    """One line on stderr. A stderr that cannot take it (2>/dev/full) loses the message, never the run:
    the exit code still says how it went, as with a closed stderr."""
    from .errors import broken_pipe

    try:
        click.echo(message, err=True)
    except OSError as exc:
        if broken_pipe(exc):
            raise
        try:  # what is left in its buffer would fail again at exit (and turn the exit code into 120)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
        except (OSError, ValueError):
            pass


def handle_errors(fn):
    """Turn known failures into one-line messages and exit codes, never tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import COMMAND_LINE, PixelpruneError, broken_pipe

        previous = _catch_stop_signals()
        naming = COMMAND_LINE.set(True)  # messages name flags (--overwrite), not Python parameters
        try:
            try:
                return fn(*args, **kwargs)
            except PixelpruneError as exc:  # converted where it happened, naming the file and the reason
                _fail(str(exc), getattr(exc, "exit_code", EXIT_USAGE))
            except OSError as exc:
                behind = _interrupt_behind(exc)
                if behind is not None:  # the cleanup after a signal wrote to a terminal that hung up (EIO)
                    raise behind from None
                if _terminal_hung_up(exc):  # the hangup itself, a moment before its SIGHUP is handled
                    raise Terminated(signal.SIGHUP) from None
                if not broken_pipe(exc):
                    raise
                # The reader of our stdout went away (e.g. `| head`): what it wanted may be incomplete,
                # so this is no success. Further writes to stdout would fail again: send them nowhere.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                _fail("standard output was closed by its reader before everything was written (broken pipe)",
                      EXIT_BROKEN_PIPE)
        except KeyboardInterrupt as exc:  # raised by the run, or by a signal handled while handling an error
            _stopped(exc)
        finally:
            COMMAND_LINE.reset(naming)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    return wrapper


# Signals that stop a run the way Ctrl-C does: the output cleaned up, one line, exit 128 + N.
# SIGHUP is what a dropped ssh session or a closed terminal sends; SIGQUIT (Ctrl-\) would
# otherwise dump core and leave the run's temporary files and lock behind.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_STOPPED_BY: dict[int, str] = {signal.SIGHUP: "hung up (SIGHUP: the terminal or ssh session went away)",
               signal.SIGQUIT: "quit (SIGQUIT)"}


def _catch_stop_signals() -> dict:
    """Turn STOP_SIGNALS into Terminated; returns the handlers to put back.

    A signal the parent set to be ignored stays ignored: that is how `nohup`
    keeps a run alive across a hangup. Outside the main thread signals are left alone.
    """
    previous = {}
    for signum in STOP_SIGNALS:
        try:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, _raise_terminated)
        except ValueError:  # not the main thread
            return {}
    if signal.getsignal(signal.SIGINT) is not None:  # left as it is, but put back after _stopped ignores it
        previous[signal.SIGINT] = signal.getsignal(signal.SIGINT)
    return previous


def _stopped(exc: KeyboardInterrupt):
    """End a run a signal stopped: release what is still held, say so in one line, exit 128 + N."""
    from .atomic import release_everything_held

    for other in (signal.SIGINT, *STOP_SIGNALS):  # a second signal must not cut the cleanup short
        try:
            signal.signal(other, signal.SIG_IGN)
        except ValueError:  # not the main thread
            break
    release_everything_held()  # what the signal caught before its cleanup was set up
    signum = exc.signum if isinstance(exc, Terminated) else int(signal.SIGINT)
    _say_last(f"pixelprune: {_STOPPED_BY.get(signum, 'interrupted')}; nothing partial was left under the output name")
    _exit_now(128 + signum)


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The signal an error was raised while handling (its __context__ chain), if any."""
    seen = 0
    while exc.__context__ is not None and seen < 20:
        exc, seen = exc.__context__, seen + 1
        if isinstance(exc, KeyboardInterrupt):
            return exc
    return None


def _terminal_hung_up(exc: OSError) -> bool:
    """EIO, and stderr is a terminal that hung up (any write to it fails so, even an empty one)."""
    import errno

    if exc.errno != errno.EIO:
        return False
    try:
        os.write(sys.stderr.fileno(), b"")
    except OSError as probe:
        return probe.errno == errno.EIO
    except (AttributeError, ValueError):  # no stderr at all
        return False
    return False


def _say_last(line: str) -> None:
    """A last line on stderr, which may be a terminal that hung up (EIO) or closed: never raises."""
    try:
        click.echo(line, err=True)
    except (OSError, ValueError, AttributeError):
        pass


def _exit_now(code: int):
    """Exit with code, even when a worker thread is stuck in a read that never returns.

    Outputs have been cleaned up by now; Python's own exit would wait for every
    worker thread, so with one still running the process ends here instead.
    """
    import threading

    stuck = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    if stuck:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nothing more to say on it
                pass
        os._exit(code)
    sys.exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGQUIT, handled like Ctrl-C so that temporary files are removed."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__()
        self.signum = int(signum)


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def _config(preset, backend, patch_size, merge_size, min_pixels, max_pixels, method, metric, tau, max_image_pixels,
            max_image_bytes, budget, max_tau):
    """A CodingConfig from the options `coder_options` adds."""
    from .backends import preset_for
    from .pipeline import CodingConfig

    return CodingConfig(
        preset=preset_for(backend, preset, patch_size=patch_size, merge_size=merge_size,
                          min_pixels=min_pixels, max_pixels=max_pixels),
        method=method, metric=metric, tau=tau, max_image_pixels=max_image_pixels,
        max_image_bytes=max_image_bytes, budget=budget, max_tau=max_tau, backend=backend,
    )


CODER_OPTION_NAMES = ("preset", "backend", "patch_size", "merge_size", "min_pixels", "max_pixels", "method", "metric", "tau",
                      "max_image_pixels", "max_image_bytes", "budget", "max_tau")


def _pop_config(options: dict):
    """Remove the coder options from a command's keyword arguments and build the config."""
    return _config(**{name: options.pop(name) for name in CODER_OPTION_NAMES})


def _columns(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _sources(image_column=None, keep_columns=(), hidden=False):
    from .pieces import SourceOptions

    return SourceOptions(image_column=image_column, keep_columns=keep_columns, hidden=hidden)


def _run_options(workers, no_progress, **extra):
    from .api import RunOptions

    return RunOptions(workers=workers, progress=not no_progress, **extra)


def _report(summary, as_json: bool, table: str, to_stderr: bool, wrote: str | None = None) -> int:
    """Print the summary, then on stderr the warnings, what was written (`wrote`: rows or PNGs) and,
    for a run that did not fully succeed, why in one line. Returns the exit code."""
    from .errors import OutputError, broken_pipe
    from .report import render_table
    from .summary import print_json

    stream = sys.stderr if to_stderr else sys.stdout
    try:
        if as_json:
            print_json(summary, to_stderr=to_stderr)
        else:
            render_table(summary, table, to_stderr=to_stderr)
        stream.flush()
    except OSError as exc:  # stdout on a full disk or /dev/full: the output itself is whole
        if broken_pipe(exc):
            raise
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())  # the rest of the buffer goes nowhere
        except (OSError, ValueError):  # a stream with no descriptor of its own
            pass
        if not to_stderr:  # asked for on stdout, it is data (--json); on stderr (-o -) it is messages (see _tell)
            written = f"; {_written_line(summary, wrote)}, in full" if wrote else ""
            raise OutputError(f"standard output: the report could not be written ({one_line(exc)}){written}") from None
    if summary.incomplete:  # on stderr whatever the mode, and in --json as "incomplete"
        _tell(f"pixelprune: warning: {escape_controls(summary.incomplete)}")
    if wrote and not as_json:
        _tell(_written_line(summary, wrote))
    # A resumed output is one output: images that failed in the earlier run still failed.
    failed, earlier = summary.failed, summary.resumed.failed if summary.resumed else 0
    if not (failed or earlier):
        return EXIT_OK
    counts = [f"{failed:,} of {summary.images:,} images failed"] if failed else []
    if earlier:
        counts.append(f"{earlier:,} failed in the resumed shards")
    _tell(f"pixelprune: {'; '.join(counts)} ({_where_errors_are(summary, as_json)})")
    return EXIT_SOME_FAILED


def _written_line(summary, what: str) -> str:
    """`wrote 10 rows (1.3 MB) to out.arrow`: one line that confirms the output."""
    from .report import format_bytes

    size = summary.bytes_written.size if summary.bytes_written else None
    where = "stdout (an Arrow IPC stream)" if summary.output == "-" else summary.output
    count = f"{summary.written:,} {what}{'' if summary.written == 1 else 's'}"
    return f"wrote {count}" + (f" ({format_bytes(size)})" if size is not None else "") + f" to {where}"


def _where_errors_are(summary, as_json: bool) -> str:
    from .writer import errors_path, is_shard_folder

    output = summary.output
    if summary.title.endswith("compress") and output and output != "-":
        from .storage import is_url, join

        if is_url(output):  # a Path would fold the // of the URL
            return f"see {join(output, 'errors.jsonl') if is_shard_folder(output) else output + '.errors.jsonl'}"
        return f"see {Path(output) / 'errors.jsonl' if is_shard_folder(output) else errors_path(output)}"
    return "see \"errors\" in the JSON" if as_json else "listed above"


CLOSED_AT_START: set[str] = set()  # the standard streams this process was started without ("stdout", ...)


def reopen_closed_streams() -> None:
    """Give every standard stream the process was started without (cron, systemd, `>&-`) /dev/null.

    Else the next file opened takes the free descriptor 1 or 2, and whatever
    writes there (ours or a library's) lands in it; and Python leaves
    sys.stdout or sys.stderr None, which printing the report would trip on.
    stdin stays None in Python, so reading `-` says it is closed.
    """
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        CLOSED_AT_START.add(name)
        if name != "stdin":
            setattr(sys, name, open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False))  # noqa: SIM115 (lives as long as the process)


def escape_what_cannot_be_encoded() -> None:
    """Write a character stdout or stderr cannot encode (an ASCII or Latin-1 locale, PYTHONIOENCODING)
    as a visible escape (\\u2026), instead of failing the report after the output was written."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") == "strict":
            reconfigure(errors="backslashreplace")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pixelprune")
def main():
    """Prune pixel-redundant visual tokens from VLM images, offline.

    Images are resized and patchified exactly as the chosen model's processor
    does, then a predictive coder keeps only the merged tokens that their
    neighbours do not predict. Exit codes: 0 all images done, 1 some images
    failed (the rest written), 2 usage error or nothing readable, 128+N
    stopped by signal N (130 Ctrl-C, 129 hangup, 143 SIGTERM), 141 stdout
    closed by its reader before everything was written.
    """
    reopen_closed_streams()
    escape_what_cannot_be_encoded()


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True,
              help="OUT.arrow (Arrow IPC file), OUT.parquet, - (Arrow IPC stream on stdout), "
                   "or DIR/ (shards part-NNNNN.arrow with manifest.json). Each may be a URL: "
                   "s3://, gs:// (README, \"Object storage and clusters\").")
@coder_options
@source_options
@click.option("--compression", type=click.Choice(["zstd", "lz4", "none"]), default=None,
              help="Buffer compression of the output [default: zstd].")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first image that fails (exit 1, output not completed).")
@click.option("--shard-size", type=click.IntRange(min=1),
              help="Images per shard with -o DIR/ [default: 10000; 1000 with --engine ray, one Ray task each].")
@click.option("--shard-format", type=click.Choice(list(TABLE_FORMATS)),
              help="File format of shards with -o DIR/ [default: arrow; parquet with --engine ray].")
@click.option("--resume", is_flag=True, help="With -o DIR/: keep committed shards and redo the rest.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Code on threads here, or on Ray Data (a local Ray, or a cluster with --ray-address).")
@click.option("--ray-address", help="Ray cluster to join (HOST:6379, auto, ray://HOST:10001) with --engine ray.")
@report_options
@handle_errors
def compress(inputs, output, image_column, keep_columns, workers, hidden, compression, overwrite, fail_fast,
             shard_size, shard_format, resume, engine, ray_address, as_json, table, no_progress, **coder):
    """Code images (folders, files, Parquet image tables) and write the kept tokens.

    \b
    pixelprune compress samples/ -o out.arrow
    pixelprune compress shard-000.parquet -o out.parquet --keep-columns question,answer
    pixelprune compress a.png b.jpg -o - | python read_stream.py
    pixelprune compress s3://bucket/docs/ -o s3://bucket/pruned/
    """
    from . import api

    if output == "-" and "stdout" in CLOSED_AT_START:
        raise ConfigError("-o - writes to standard output, and it is closed (started with >&-); "
                          "write a file (-o out.arrow) or give the run a stdout")
    if output == "-" and sys.stdout.isatty():
        raise ConfigError("-o - writes a binary Arrow stream, and stdout is a terminal; pipe it into a reader "
                          "(... -o - | pixelprune stats -) or write a file (-o out.arrow)")
    summary = api.compress(
        list(inputs), output, _pop_config(coder), _sources(image_column, _columns(keep_columns), hidden),
        _run_options(workers, no_progress, fail_fast=fail_fast, engine=engine, ray_address=ray_address),
        compression=compression, overwrite=overwrite, shard_size=shard_size, shard_format=shard_format, resume=resume,
    )
    sys.exit(_report(summary, as_json, table, to_stderr=output == "-", wrote="row"))


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@coder_options
@source_options
@click.option("--group-by", "group_by", help="Break totals down by a column (Parquet or output column), "
              "or by 'folder' (first path part of the id).")
@click.option("--sample", type=click.IntRange(min=1), help="Estimate from a random (seeded, reproducible) sample "
              "of this many images instead of coding them all (images only; outputs are read whole).")
@report_options
@handle_errors
def stats(inputs, image_column, keep_columns, workers, hidden, group_by, sample, as_json, table, no_progress, **coder):
    """Report what coding saves: of images (without writing tensors) or of a compressed output.

    \b
    pixelprune stats shard-000.parquet --group-by kind
    pixelprune stats out.arrow
    pixelprune stats big/ --sample 1000                    (an estimate from 1,000 random images)
    pixelprune compress a.png -o - | pixelprune stats -    (- : a stream on stdin)
    """
    from . import api
    from .summary import add_groups

    columns = _columns(keep_columns)
    if group_by and group_by != "folder" and group_by not in columns:
        columns = (*columns, group_by)
    config = _pop_config(coder)
    summary = api.stats(list(inputs), config, _sources(image_column, columns, hidden),
                        _run_options(workers, no_progress), sample=sample)
    if group_by:
        add_groups(summary, group_by)
    sys.exit(_report(summary, as_json, table, to_stderr=False))


@main.command()
@click.argument("path")
@click.option("-o", "--output", required=True, help="Folder to write one PNG per row into.")
@click.option("--overwrite", is_flag=True, help="Replace existing PNGs.")
@report_options
@handle_errors
def restore(path, output, overwrite, as_json, table, no_progress):
    """Rebuild every row's resized image as a PNG from a compressed output (- : a stream on stdin).

    Files are named by percent-encoding the row id and adding .png
    (sub/a.png -> sub%2Fa.png.png; x.parquet#3 -> x.parquet%233.png), which
    never maps two ids to one name.
    """
    from . import api

    summary = api.restore(path, output, overwrite, progress=not no_progress)
    sys.exit(_report(summary, as_json, table, to_stderr=False, wrote="PNG"))


@main.command()
@handle_errors
def warmup():
    """Compile the coder's kernels into Numba's cache, so the first real run starts fast.

    `make install` runs it; run it yourself after `pip install` (e.g. in an
    image build). Set NUMBA_CACHE_DIR when the install folder is read-only.
    """
    import time

    from .pipeline import warm_up

    started = time.perf_counter()
    covered = warm_up()
    _tell(f"numba cache warm for {', '.join(covered)} in {time.perf_counter() - started:.1f} s")


@main.command()
@click.argument("path")
@click.option("-o", "--output", required=True, help="Picture to write: .png, .jpg, .webp, .tif or .bmp (the suffix chooses).")
@click.option("--id", "image_id", help="With a compressed output: the row with this id.")
@click.option("--row", type=click.IntRange(min=0), help="Row number (from 0) of a compressed output or Parquet image table.")
@click.option("--side-by-side", is_flag=True, help="Add the image restored from the kept tokens (and an error heat map when tau > 0).")
@click.option("--thumb", type=click.IntRange(min=32), default=256, show_default=True, help="Contact-sheet thumbnail size.")
@click.option("--sample", type=click.IntRange(min=0), default=100, show_default=True,
              help="Contact sheet: show a random (seeded) sample of this many images when a folder holds more; 0 shows all.")
@click.option("--overwrite", is_flag=True, help="Replace an existing PNG.")
@coder_options
@source_options
@handle_errors
def show(path, output, image_id, row, side_by_side, thumb, sample, overwrite, image_column, keep_columns, workers, hidden,
         **coder):
    """Draw which tokens are kept: dropped tokens greyed and hatched, the token grid, a caption.

    \b
    pixelprune show samples/gui_window.png -o overlay.png --side-by-side
    pixelprune show out.arrow --id form.png -o form.png
    pixelprune show samples/samples.parquet --row 3 -o slide.png
    pixelprune show samples/ -o contact.png          # contact sheet, most reduced first
    pixelprune show shard.parquet -o contact.png     # a table without --row: a contact sheet too
    pixelprune show out.arrow -o contact.png         # an output without --id/--row: its rows (one row: that row)
    """
    from . import show as drawing
    from .atomic import sweep_partials_of
    from .overlap import refuse_overlap
    from .parallel import default_workers
    from .writer import check_target, write_atomically

    picture_format = drawing.picture_format(output)  # from the suffix, refused before anything is drawn
    refuse_overlap([path], output)
    check_target(output, overwrite)
    config = _pop_config(coder)
    options = drawing.ShowOptions(image_id=image_id, row=row, side_by_side=side_by_side, thumb=thumb,
                                  sample=sample or None, workers=workers or default_workers(),
                                  image_column=image_column, hidden=hidden, output=output)
    picture, failures, note = drawing.render_path(path, config, options)
    sweep_partials_of(output)  # what a killed show left
    write_atomically(output, lambda handle: drawing.save_picture(picture, handle, picture_format))
    for failed in failures:
        _tell(escape_controls(f"pixelprune: {failed.id}: {failed.stage} failed: {failed.reason}"))
    _tell(escape_controls(f"wrote {output} ({picture.width}x{picture.height}" + (f"; {note})" if note else ")")))
    sys.exit(EXIT_SOME_FAILED if failures else EXIT_OK)
