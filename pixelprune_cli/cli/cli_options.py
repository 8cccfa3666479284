"""The options commands share, as reusable click decorators, and the records they become.

Building a record imports the module that defines it only then (inside the
functions below): those pull in numpy, numba and pyarrow, which
`pixelprune --help` must not wait for.
"""

from __future__ import annotations

import click

from pixelprune_cli.coding.presets import BACKENDS, DEFAULT_BACKEND, DEFAULT_PRESET, METHODS, METRICS, PRESETS


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
        click.option("--allow-path-schemes", default="", metavar="SCHEMES",
                     help="Comma-separated URL schemes (s3,gs,http,...) a table's path cells may name on any store; "
                          "'file' lets a table on a store name local files. By default a path cell is read only "
                          "beside its table (docs: Inputs, path cells)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def limit_option(fn):
    return click.option("--limit", type=click.IntRange(min=1), metavar="N",
                        help="Only the first N input images, in input order (sorted paths, then table rows): "
                             "try settings on a large input quickly.")(fn)


def id_column_option(fn):
    return click.option("--id-column", metavar="COL",
                        help="Parquet inputs: ids from this column's values instead of FILE.parquet#ROW "
                             "(a row whose value is null keeps FILE.parquet#ROW).")(fn)


def report_options(fn):
    options = [
        click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary on stdout."),
        click.option("--table", type=click.Choice(["auto", "all", "summary", "none"]), default="auto",
                     show_default=True, help="Per-image rows: all, the 5 best and 5 worst, or none; totals, "
                     "notices and failures are always printed."),
        click.option("--no-progress", is_flag=True, help="Never show the progress line (count/total, rate, time left)."),
        click.option("--quiet", "-q", is_flag=True, help="Print only warnings and errors (no table, progress or "
                     "'wrote' line); the exit code says how it went. --json still prints the JSON."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def config_from(preset, backend, patch_size, merge_size, min_pixels, max_pixels, method, metric, tau, max_image_pixels,
            max_image_bytes, budget, max_tau):
    """A CodingConfig from the options `coder_options` adds."""
    from pixelprune_cli.coding.backends import preset_for
    from pixelprune_cli.coding.pipeline import CodingConfig

    return CodingConfig(
        preset=preset_for(backend, preset, patch_size=patch_size, merge_size=merge_size,
                          min_pixels=min_pixels, max_pixels=max_pixels),
        method=method, metric=metric, tau=tau, max_image_pixels=max_image_pixels,
        max_image_bytes=max_image_bytes, budget=budget, max_tau=max_tau, backend=backend,
    )


CODER_OPTION_NAMES = ("preset", "backend", "patch_size", "merge_size", "min_pixels", "max_pixels", "method", "metric", "tau",
                      "max_image_pixels", "max_image_bytes", "budget", "max_tau")


def pop_config(options: dict):
    """Remove the coder options from a command's keyword arguments and build the config."""
    return config_from(**{name: options.pop(name) for name in CODER_OPTION_NAMES})


def column_list(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def sources_from(image_column=None, keep_columns=(), hidden=False, allow_path_schemes="", limit=None, id_column=None):
    from pixelprune_cli.inputs.pieces import SourceOptions

    return SourceOptions(image_column=image_column, keep_columns=keep_columns, hidden=hidden,
                         allow_path_schemes=column_list(allow_path_schemes), limit=limit, id_column=id_column)


def run_options_from(workers, no_progress, **extra):
    from pixelprune_cli.run.job import RunOptions

    return RunOptions(workers=workers, progress=not no_progress, **extra)
