"""Command line: a thin layer that parses options and calls the Python API.

Heavy modules (numpy, numba, pyarrow) are imported inside the commands so that
`pixelprune --help` answers at once.

The options the commands share are in cli_options.py; how a command ends
(exit codes, one-line errors, signals) in cli_errors.py.
"""

from __future__ import annotations

import os
import sys

import click

from pixelprune_cli import __version__
from pixelprune_cli.cli.cli_errors import (
    CLOSED_AT_START,
    EXIT_OK,
    EXIT_SOME_FAILED,
    escape_what_cannot_be_encoded,
    handle_errors,
    reopen_closed_streams,
    tell,
)
from pixelprune_cli.cli.cli_options import (
    coder_options,
    column_list,
    id_column_option,
    limit_option,
    pop_config,
    report_options,
    run_options_from,
    source_options,
    sources_from,
)
from pixelprune_cli.errors import ConfigError, escape_controls, one_line
from pixelprune_cli.outputs.formats import TABLE_FORMATS


def _report(summary, as_json: bool, table: str, to_stderr: bool, wrote: str | None = None, quiet: bool = False) -> int:
    """Print the summary, then on stderr the warnings, what was written (`wrote`: rows or PNGs) and,
    for a run that did not fully succeed, why in one line. Returns the exit code.

    `quiet` (--quiet): warnings and errors only; failures not kept in an errors file get a line each."""
    from pixelprune_cli.errors import OutputError, broken_pipe
    from pixelprune_cli.report.report import render_table
    from pixelprune_cli.report.summary import print_json

    stream = sys.stderr if to_stderr else sys.stdout
    try:
        if as_json:
            print_json(summary, to_stderr=to_stderr)
        elif not quiet:
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
        tell(f"pixelprune: warning: {escape_controls(summary.incomplete)}")
    if wrote and not as_json and not quiet:
        tell(_written_line(summary, wrote))
    # A resumed output is one output: images that failed in the earlier run still failed.
    failed, earlier = summary.failed, summary.resumed.failed if summary.resumed else 0
    if not (failed or earlier):
        return EXIT_OK
    where = _where_errors_are(summary, as_json)
    if quiet and where == "listed above":  # no table listed them: one line each
        for record in summary.error_log:
            tell(escape_controls(f"pixelprune: {record['id']}: {record['stage']} failed: {record['reason']}"))
    counts = [f"{failed:,} of {summary.images:,} images failed"] if failed else []
    if failed and summary.rows is not None:  # multi-image rows fail whole
        counts = [f"{failed:,} of {summary.rows + failed:,} rows failed"]
    if earlier:
        counts.append(f"{earlier:,} failed in the resumed shards")
    tell(f"pixelprune: {'; '.join(counts)} ({where})")
    return EXIT_SOME_FAILED


def _written_line(summary, what: str) -> str:
    """`wrote 10 rows (1.3 MB) to out.arrow`: one line that confirms the output."""
    from pixelprune_cli.report.report import format_bytes

    size = summary.bytes_written.size if summary.bytes_written else None
    where = "stdout (an Arrow IPC stream)" if summary.output == "-" else summary.output
    if summary.resumed and summary.images == 0:  # --resume of a complete output: "wrote 0 rows" would read as a loss
        images = summary.resumed.images
        return f"nothing to do: {'the' if images == 1 else 'all'} {images:,} image{'' if images == 1 else 's'} " \
               f"{'is' if images == 1 else 'are'} already in {where}"
    count = f"{summary.written:,} {what}{'' if summary.written == 1 else 's'}"
    if summary.rows is not None and what == "row":  # multi-image rows: one row per sample
        count = f"{summary.rows:,} row{'' if summary.rows == 1 else 's'} ({summary.written:,} images)"
    return f"wrote {count}" + (f" ({format_bytes(size)})" if size is not None else "") + f" to {where}"


def _where_errors_are(summary, as_json: bool) -> str:
    if summary.errors_file:  # compress's, found with its output's target (never asked of the store again)
        return f"see {summary.errors_file}"
    return "see \"errors\" in the JSON" if as_json else "listed above"


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
                   "s3://, gs:// (docs/storage.md).")
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
@limit_option
@id_column_option
@report_options
@handle_errors
def compress(inputs, output, image_column, keep_columns, workers, hidden, allow_path_schemes, compression, overwrite,
             fail_fast, shard_size, shard_format, resume, engine, ray_address, limit, id_column, as_json, table,
             no_progress, quiet, **coder):
    """Code images (folders, files, Parquet image tables) and write the kept tokens.

    \b
    pixelprune compress samples/ -o out.arrow
    pixelprune compress shard-000.parquet -o out.parquet --keep-columns question,answer
    pixelprune compress a.png b.jpg -o - | python read_stream.py
    pixelprune compress s3://bucket/docs/ -o s3://bucket/pruned/
    """
    from pixelprune_cli import api

    if output == "-" and "stdout" in CLOSED_AT_START:
        raise ConfigError("-o - writes to standard output, and it is closed (started with >&-); "
                          "write a file (-o out.arrow) or give the run a stdout")
    if output == "-" and sys.stdout.isatty():
        raise ConfigError("-o - writes a binary Arrow stream, and stdout is a terminal; pipe it into a reader "
                          "(... -o - | pixelprune stats -) or write a file (-o out.arrow)")
    summary = api.compress(
        list(inputs), output, pop_config(coder),
        sources_from(image_column, column_list(keep_columns), hidden, allow_path_schemes, limit, id_column),
        run_options_from(workers, no_progress or quiet, fail_fast=fail_fast, engine=engine, ray_address=ray_address),
        compression=compression, overwrite=overwrite, shard_size=shard_size, shard_format=shard_format, resume=resume,
    )
    sys.exit(_report(summary, as_json, table, to_stderr=output == "-", wrote="row", quiet=quiet))


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@coder_options
@source_options
@click.option("--group-by", "group_by", help="Break totals down by a column (Parquet or output column), "
              "or by 'folder' (first path part of the id).")
@click.option("--sample", type=click.IntRange(min=1), help="Estimate from a random (seeded, reproducible) sample "
              "of this many images instead of coding them all (images only; outputs are read whole).")
@limit_option
@id_column_option
@report_options
@handle_errors
def stats(inputs, image_column, keep_columns, workers, hidden, allow_path_schemes, group_by, sample, limit, id_column,
          as_json, table, no_progress, quiet, **coder):
    """Report what coding saves: of images (without writing tensors) or of a compressed output.

    \b
    pixelprune stats shard-000.parquet --group-by kind
    pixelprune stats out.arrow
    pixelprune stats big/ --sample 1000                    (an estimate from 1,000 random images)
    pixelprune compress a.png -o - | pixelprune stats -    (- : a stream on stdin)
    """
    from pixelprune_cli import api
    from pixelprune_cli.report.summary import add_groups

    columns = column_list(keep_columns)
    if group_by and group_by != "folder" and group_by not in columns:
        columns = (*columns, group_by)
    config = pop_config(coder)
    summary = api.stats(list(inputs), config, sources_from(image_column, columns, hidden, allow_path_schemes, limit,
                                                           id_column),
                        run_options_from(workers, no_progress or quiet), sample=sample)
    if group_by:
        add_groups(summary, group_by)
    sys.exit(_report(summary, as_json, table, to_stderr=False, quiet=quiet))


@main.command()
@click.argument("path")
@click.option("-o", "--output", required=True, help="Folder to write one PNG per row into.")
@click.option("--overwrite", is_flag=True, help="Replace existing PNGs.")
@report_options
@handle_errors
def restore(path, output, overwrite, as_json, table, no_progress, quiet):
    """Rebuild every row's resized image as a PNG from a compressed output (- : a stream on stdin).

    Files are named by percent-encoding the row id and adding .png
    (sub/a.png -> sub%2Fa.png.png; x.parquet#3 -> x.parquet%233.png), which
    never maps two ids to one name.
    """
    from pixelprune_cli import api

    summary = api.restore(path, output, overwrite, progress=not (no_progress or quiet))
    sys.exit(_report(summary, as_json, table, to_stderr=False, wrote="PNG", quiet=quiet))


@main.command()
@handle_errors
def warmup():
    """Compile the coder's kernels into Numba's cache, so the first real run starts fast.

    `make install` runs it; run it yourself after `pip install` (e.g. in an
    image build). Set NUMBA_CACHE_DIR when the install folder is read-only.
    """
    import time

    from pixelprune_cli import api

    started = time.perf_counter()
    covered = api.warmup()
    tell(f"numba cache warm for {', '.join(covered)} in {time.perf_counter() - started:.1f} s")


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
@click.option("--no-progress", is_flag=True, help="Never show the progress line of a contact sheet.")
@coder_options
@source_options
@handle_errors
def show(path, output, image_id, row, side_by_side, thumb, sample, overwrite, no_progress, image_column, keep_columns,
         workers, hidden, allow_path_schemes, **coder):
    """Draw which tokens are kept: dropped tokens greyed and hatched, the token grid, a caption.

    \b
    pixelprune show samples/gui_window.png -o overlay.png --side-by-side
    pixelprune show out.arrow --id form.png -o form.png
    pixelprune show samples/samples.parquet --row 3 -o slide.png
    pixelprune show samples/ -o contact.png          # contact sheet, most reduced first
    pixelprune show shard.parquet -o contact.png     # a table without --row: a contact sheet too
    pixelprune show out.arrow -o contact.png         # an output without --id/--row: its rows (one row: that row)
    """
    from pixelprune_cli import api
    from pixelprune_cli.pictures.show import ShowOptions
    from pixelprune_cli.run.parallel import default_workers
    from pixelprune_cli.storage.urls import shown

    config = pop_config(coder)
    options = ShowOptions(image_id=image_id, row=row, side_by_side=side_by_side, thumb=thumb, sample=sample or None,
                          workers=workers or default_workers(), image_column=image_column, hidden=hidden,
                          allow_path_schemes=column_list(allow_path_schemes), progress=not no_progress)
    picture, failures, note = api.show(path, output, config, options, overwrite)
    for failed in failures:
        tell(escape_controls(f"pixelprune: {failed.id}: {failed.stage} failed: {failed.reason}"))
    tell(escape_controls(f"wrote {shown(output)} ({picture.width}x{picture.height}" + (f"; {note})" if note else ")")))
    sys.exit(EXIT_SOME_FAILED if failures else EXIT_OK)


@main.command("eval")
@click.argument("data")
@click.option("--model", "model", required=True, help="Local checkpoint folder (Qwen2-VL, Qwen2.5-VL or Qwen3-VL).")
@click.option("--task", required=True, type=click.Choice(["docvqa", "infovqa", "chartqa", "textvqa", "ocrbench",
                                                         "screenspot"]), help="Benchmark: prompt, columns, metric.")
@click.option("--tau", "taus", default="0", show_default=True, help="Pruned arms, one per tau (0,0.02,0.05).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True, help="auto: bfloat16 on CUDA, float32 on CPU.")
@click.option("--column", "columns", multiple=True, help="ROLE=NAME: the table's column for a task role "
              "(question, answers; subset for ocrbench).")
@click.option("--image-column", help="The table's image column (default: detected).")
@click.option("--min-pixels", type=click.IntRange(min=1), help="Override the checkpoint processor's min_pixels.")
@click.option("--max-pixels", type=click.IntRange(min=1), help="Override the checkpoint processor's max_pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--predictions", help="Write one JSON line per arm and row here (arm, id, prediction, score, ...).")
@click.option("--resume", is_flag=True, help="Continue the --predictions file of an earlier run of this task and model.")
@click.option("--plot", help="Draw score against kept fraction, one point per arm, into this PNG.")
@click.option("--no-progress", is_flag=True, help="Never show the progress line.")
@handle_errors
def evaluate(data, model, task, taus, limit, max_new_tokens, batch_size, device, dtype, columns, image_column,
             min_pixels, max_pixels, as_json, predictions, resume, plot, no_progress):
    """Run a checkpoint full and pruned on a benchmark table and score each arm (docs/evaluation.md).

    \b
    pixelprune eval docvqa_val.parquet --model Qwen3-VL-2B-Instruct --task docvqa --tau 0,0.02 --limit 500
    """
    from pixelprune_cli.evaluation import cli_run

    sys.exit(cli_run.run_command(data, model, task, taus, limit, max_new_tokens, batch_size, device, dtype, columns,
                                 image_column, min_pixels, max_pixels, as_json, predictions, resume, plot,
                                 no_progress))
