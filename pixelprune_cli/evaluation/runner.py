"""Run a checkpoint's arms over a benchmark table: `full` on the processor's inputs, one pruned arm per tau.

Per row the image is decoded once (as `compress` decodes it) and every arm
sees that image: the full arm through the processor, each pruned arm as
pixelprune's row at its tau through `hf.prepare_inputs` on the `enable`d
model. One user message [image, text] through the checkpoint's chat template
with add_generation_prompt, greedy decoding. A row that fails in an arm is
recorded with its reason and the run goes on.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from pixelprune_cli.errors import ImageFailure, one_line
from pixelprune_cli.evaluation.checkpoint import Checkpoint
from pixelprune_cli.evaluation.results import ArmTotals, Prediction, PredictionsFile, arm_name
from pixelprune_cli.evaluation.table import BenchmarkRow, BenchmarkTable
from pixelprune_cli.evaluation.tasks import Scoring, Task


@dataclass(frozen=True)
class EvalOptions:
    taus: tuple[float, ...] = (0.0,)
    limit: int | None = None
    max_new_tokens: int = 32
    batch_size: int = 1
    progress: bool = True


@dataclass
class Decoded:
    row: BenchmarkRow
    image: Any  # PIL image, decoded and oriented
    text: str  # the rendered chat prompt
    seen_size: tuple[int, int]  # (width, height) the model sees


class _FirstLogits:
    """A logits processor that notes when generate's first logits arrive (after the ViT and the prefill)."""

    def __init__(self, device: str):
        self.device: str = device
        self.at: float | None = None

    def __call__(self, input_ids, scores):
        if self.at is None:
            _sync(self.device)
            self.at = time.perf_counter()
        return scores


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def prompt_text(processor, question: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def decode_row(row: BenchmarkRow, task: Task, checkpoint: Checkpoint) -> Decoded:
    from pixelprune_cli.coding.backends import load, target_size
    from pixelprune_cli.coding.preprocess import DEFAULT_MAX_IMAGE_BYTES, open_image

    if row.read is None:
        raise ImageFailure("read", row.problem or "no image")
    image = load(open_image(row.read(DEFAULT_MAX_IMAGE_BYTES)), checkpoint.backend)
    text = prompt_text(checkpoint.processor, task.prompt(str(row.fields.get("question") or "")))
    return Decoded(row, image, text, target_size(image.size, checkpoint.preset, checkpoint.backend))


def generate(checkpoint: Checkpoint, inputs, max_new_tokens: int) -> tuple[list[str], float, float]:
    """(answers, ViT+prefill seconds, generate seconds) of one batch, greedy."""
    import torch
    from transformers import LogitsProcessorList

    inputs = inputs.to(checkpoint.device)
    clock = _FirstLogits(checkpoint.device)
    _sync(checkpoint.device)
    start = time.perf_counter()
    with torch.no_grad():
        out = checkpoint.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                        logits_processor=LogitsProcessorList([clock]))
    _sync(checkpoint.device)
    end = time.perf_counter()
    new = out[:, inputs["input_ids"].shape[1]:]
    answers = [a.strip() for a in checkpoint.processor.batch_decode(new, skip_special_tokens=True)]
    return answers, (clock.at or end) - start, end - start


def full_inputs(checkpoint: Checkpoint, batch: list[Decoded]):
    return checkpoint.processor(text=[d.text for d in batch], images=[d.image for d in batch], return_tensors="pt",
                                padding=True, padding_side="left")


def pruned_rows(checkpoint: Checkpoint, batch: list[Decoded], tau: float) -> tuple[list[dict], dict]:
    from pixelprune_cli.coding.pipeline import CodingConfig, code_image

    config = CodingConfig(checkpoint.preset, tau=tau, backend=checkpoint.backend)
    return [code_image(d.image, config, d.row.id).as_row() for d in batch], config.to_meta()


def run_arm(checkpoint: Checkpoint, task: Task, batch: list[Decoded], tau: float | None,
            options: EvalOptions) -> list[Prediction]:
    """One arm on a batch: its predictions, each scored; a failure becomes one Prediction per row with the reason."""
    name = arm_name(tau)
    merge = checkpoint.preset.merge_size
    try:
        if tau is None:
            inputs = full_inputs(checkpoint, batch)
            full = [int(g.prod()) // merge**2 for g in inputs["image_grid_thw"]]
            used = full
        else:
            from pixelprune_cli.hf import prepare_inputs

            rows, meta = pruned_rows(checkpoint, batch, tau)
            inputs = prepare_inputs(checkpoint.processor, [d.text for d in batch], rows, meta)
            full, used = [r["tokens"] for r in rows], [r["kept"] for r in rows]
        answers, prefill, total = generate(checkpoint, inputs, options.max_new_tokens)
    except Exception as exc:  # a bad row or an out-of-memory batch costs its rows, never the run
        return [Prediction(name, d.row.id, None, None, error=one_line(exc)) for d in batch]
    out = []
    for d, answer, tokens, whole in zip(batch, answers, used, full):
        scoring = Scoring(checkpoint.family, d.seen_size, d.row.fields.get("subset"))
        try:
            score = float(task.score(answer, d.row.fields.get("answers"), scoring))
        except Exception as exc:  # gold values of the wrong kind in this row
            out.append(Prediction(name, d.row.id, answer, None, error=f"scoring failed: {one_line(exc)}"))
            continue
        out.append(Prediction(name, d.row.id, answer, score, tokens, whole, 1000 * prefill / len(batch),
                              1000 * total / len(batch)))
    return out


def evaluate(checkpoint: Checkpoint, task: Task, table: BenchmarkTable, options: EvalOptions,
             predictions: PredictionsFile | None = None) -> list[ArmTotals]:
    """Every arm on the table's first `limit` rows; returns each arm's totals (full first)."""
    from pixelprune_cli.report.report import Progress

    taus: list[float | None] = [None, *options.taus]
    arms = {arm_name(t): ArmTotals(arm_name(t), t) for t in taus}
    for earlier in predictions.earlier if predictions else ():
        if earlier.arm in arms:
            arms[earlier.arm].add(earlier)
    total = min(table.rows, options.limit) if options.limit is not None else table.rows
    progress = Progress(options.progress, "evaluating", total=total, unit="row")

    def record(prediction: Prediction) -> None:
        arms[prediction.arm].add(prediction)
        if predictions is not None:
            predictions.write(prediction)

    def flush(batch: list[Decoded]) -> None:
        for tau in taus:
            todo = [d for d in batch if d.row.id not in arms[arm_name(tau)].predictions]
            if todo:
                for prediction in run_arm(checkpoint, task, todo, tau, options):
                    record(prediction)
        for _ in batch:
            progress.advance()

    try:
        batch: list[Decoded] = []
        for index, row in enumerate(table):
            if index >= total:
                break
            if all(row.id in arm.predictions for arm in arms.values()):
                progress.advance()
                continue
            try:
                batch.append(decode_row(row, task, checkpoint))
            except Exception as exc:  # unreadable image: every arm records it
                reason = exc.reason if isinstance(exc, ImageFailure) else one_line(exc)
                for name, arm in arms.items():
                    if row.id not in arm.predictions:
                        record(Prediction(name, row.id, None, None, error=reason))
                progress.advance()
                continue
            if len(batch) >= options.batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
    finally:
        progress.close()
    return list(arms.values())


def model_label(path: str) -> str:
    return os.path.abspath(path)
