"""`pixelprune eval` as a function: check everything, load the checkpoint, run the arms, report.

The CLI parses options and calls `run_eval`; a notebook can call it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelprune_cli.errors import ConfigError
from pixelprune_cli.evaluation.results import PredictionsFile
from pixelprune_cli.evaluation.runner import EvalOptions, evaluate, model_label
from pixelprune_cli.evaluation.table import open_table
from pixelprune_cli.evaluation.tasks import parse_column_overrides, task_named


@dataclass(frozen=True)
class EvalRequest:
    data: str
    model: str
    task: str
    options: EvalOptions
    columns: tuple[str, ...] = ()  # ROLE=NAME
    image_column: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    min_pixels: int | None = None
    max_pixels: int | None = None
    predictions: str | None = None
    resume: bool = False


def parse_taus(text: str) -> tuple[float, ...]:
    """`0,0.02,0.05` as floats in [0, 1], in order, without repeats."""
    taus = []
    for part in text.split(","):
        try:
            tau = float(part)
        except ValueError:
            raise ConfigError(f"--tau takes numbers separated by commas (0,0.02), got {part.strip()!r}") from None
        if not 0.0 <= tau <= 1.0:
            raise ConfigError(f"--tau {tau:g}: each tau must be between 0 and 1")
        if tau not in taus:
            taus.append(tau)
    return tuple(taus)


def run_eval(request: EvalRequest) -> dict:
    """The report (as `--json` prints it) of every arm of the request."""
    from pixelprune_cli.evaluation.checkpoint import family_of, load_checkpoint
    from pixelprune_cli.evaluation.output import report_json

    task = task_named(request.task)
    if request.resume and not request.predictions:
        raise ConfigError("--resume continues a --predictions file; name it")
    family_of(request.model)  # a wrong folder is refused before the table is read or torch loads
    table = open_table(request.data, task, parse_column_overrides(request.columns), request.image_column)
    model = model_label(request.model)
    predictions = (PredictionsFile(request.predictions, task.name, model, request.resume)
                   if request.predictions else None)
    try:
        checkpoint = load_checkpoint(request.model, request.device, request.dtype, request.min_pixels,
                                     request.max_pixels)
        arms = evaluate(checkpoint, task, table, request.options, predictions)
    finally:
        if predictions is not None:
            predictions.close()
    full = arms[0]
    return report_json(task.name, model, task.metric, [arm.summary(full) for arm in arms])
