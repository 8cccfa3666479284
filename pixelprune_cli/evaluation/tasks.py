"""The benchmarks `pixelprune eval` knows: lmms-eval's prompt, the columns each needs, and its metric.

Columns are found by their names in lmms-lab's published tables (the first
candidate present wins) and can be named with `--column ROLE=NAME`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pixelprune_cli.errors import ConfigError, InputError
from pixelprune_cli.evaluation import clicks, metrics
from pixelprune_cli.evaluation.vqa_accuracy import vqa_accuracy

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
SCREENSPOT_PROMPT = (
    "Bounding box coordinates are specified in the format (top-left x, top-left y, bottom-right x, bottom-right y). "
    "All values are floating point numbers bounded between 0 and 1 with two decimal places of precision "
    "(e.g., 0.15). Please provide the bounding box coordinates of the region that corresponds to the command: ")


@dataclass(frozen=True)
class Scoring:
    """What a metric may need beyond the prediction and the gold value."""

    family: str = ""
    seen_size: tuple[int, int] = (1, 1)  # (width, height) of the image the model saw
    subset: str | None = None  # OCRBench's `dataset` column


@dataclass(frozen=True)
class Task:
    name: str
    columns: dict  # role -> candidate column names, in order of preference
    prompt: Callable[[str], str]
    score: Callable[[str, object, Scoring], float]
    metric: str
    optional: tuple[str, ...] = ()  # roles a table may lack

    def resolve_columns(self, names: list[str], overrides: dict, where: str) -> dict:
        """role -> column of this table; InputError naming the missing columns and the columns there are."""
        unknown = set(overrides) - set(self.columns)
        if unknown:
            raise ConfigError(f"--column: task {self.name} has no role {', '.join(sorted(unknown))} "
                              f"(its roles: {', '.join(self.columns)})")
        found, missing = {}, []
        for role, candidates in self.columns.items():
            wanted = [overrides[role]] if role in overrides else list(candidates)
            column = next((name for name in wanted if name in names), None)
            if column is not None:
                found[role] = column
            elif role not in self.optional:
                missing.append(f"{role} ({' or '.join(repr(w) for w in wanted)})")
        if missing:
            raise InputError(f"{where}: no column for task {self.name}'s {'; '.join(missing)}; the table has "
                             f"{', '.join(names)} (name one with --column ROLE=NAME)")
        return found


def _short(question: str) -> str:
    return f"{question}{SHORT_ANSWER}"


TASKS = {task.name: task for task in [
    Task("docvqa", {"question": ("question",), "answers": ("answers",)}, _short,
         lambda p, gold, s: metrics.anls(p, gold), "ANLS"),
    Task("infovqa", {"question": ("question",), "answers": ("answers",)}, _short,
         lambda p, gold, s: metrics.anls(p, gold), "ANLS"),
    Task("chartqa", {"question": ("question", "query"), "answers": ("answer", "label")}, _short,
         lambda p, gold, s: metrics.relaxed_accuracy(p, gold), "relaxed accuracy"),
    Task("textvqa", {"question": ("question",), "answers": ("answers",)}, _short,
         lambda p, gold, s: vqa_accuracy(p, gold), "VQA accuracy"),
    Task("ocrbench", {"question": ("question",), "answers": ("answer", "answers"), "subset": ("dataset",)},
         lambda q: q.strip(), lambda p, gold, s: metrics.ocrbench_match(p, gold, s.subset), "substring match",
         optional=("subset",)),
    Task("screenspot", {"question": ("instruction",), "answers": ("bbox",)}, lambda q: SCREENSPOT_PROMPT + q,
         lambda p, gold, s: clicks.click_in_box(p, gold, s.family, s.seen_size), "click in box"),
]}


def task_named(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


def parse_column_overrides(values) -> dict:
    """`ROLE=NAME` strings (--column, repeatable) as a dict."""
    out = {}
    for value in values or ():
        role, sep, name = value.partition("=")
        if not sep or not role or not name:
            raise ConfigError(f"--column takes ROLE=NAME (e.g. question=query), got {value!r}")
        out[role.strip()] = name.strip()
    return out
