"""The `pixelprune eval` command's body: options to an EvalRequest, the report, the plot, the exit code."""

from __future__ import annotations

from pixelprune_cli.cli.cli_errors import EXIT_OK, EXIT_SOME_FAILED, tell
from pixelprune_cli.evaluation.command import EvalRequest, parse_taus, run_eval
from pixelprune_cli.evaluation.runner import EvalOptions


def run_command(data, model, task, taus, limit, max_new_tokens, batch_size, device, dtype, columns, image_column,
                min_pixels, max_pixels, as_json, predictions, resume, plot, no_progress) -> int:
    from pixelprune_cli.evaluation.output import draw_plot, print_json, render_table
    from pixelprune_cli.outputs.writer import write_atomically

    options = EvalOptions(parse_taus(taus), limit, max_new_tokens, batch_size, progress=not no_progress)
    if plot and not plot.lower().endswith(".png"):
        from pixelprune_cli.errors import ConfigError

        raise ConfigError(f"--plot {plot}: the plot is a PNG (name it FILE.png)")
    request = EvalRequest(data, model, task, options, tuple(columns), image_column, device, dtype, min_pixels,
                          max_pixels, predictions, resume)
    report = run_eval(request)
    if as_json:
        print_json(report)
    else:
        render_table(report)
    if plot:
        write_atomically(plot, lambda handle: draw_plot(report, handle))
        tell(f"wrote {plot}")
    failed = sum(arm["failed"] for arm in report["arms"])
    for arm in report["arms"]:
        for error in arm["errors"]:
            tell(f"pixelprune: {arm['name']}: row {error['id']}: {error['reason']}")
    if failed:
        tell(f"pixelprune: {failed:,} predictions failed (their reasons are in "
             f"{predictions if predictions else 'the --predictions file, when one is named'})")
        return EXIT_SOME_FAILED
    return EXIT_OK
