"""What a run records: one Prediction per arm and row, the predictions file (and resuming it), per-arm totals.

The totals are computed from the predictions alone, so a score is by
construction the mean of its predictions' scores, resumed or not.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from pixelprune_cli.errors import ConfigError, InputError
from pixelprune_cli.storage.urls import is_url


@dataclass
class Prediction:
    arm: str
    id: str
    prediction: str | None
    score: float | None
    tokens: int = 0  # visual tokens the LLM read
    full_tokens: int = 0  # visual tokens of the full image
    prefill_ms: float = 0.0  # ViT and prefill: generate's start to its first logits
    generate_ms: float = 0.0  # the whole generate call
    error: str | None = None


def arm_name(tau: float | None) -> str:
    return "full" if tau is None else f"tau={tau:g}"


@dataclass
class ArmTotals:
    name: str
    tau: float | None
    predictions: dict = field(default_factory=dict)  # id -> Prediction

    def add(self, prediction: Prediction) -> None:
        self.predictions[prediction.id] = prediction

    def summary(self, full: ArmTotals | None) -> dict:
        scored = [p for p in self.predictions.values() if p.error is None]
        n = len(scored)

        def mean(values):
            return sum(values) / n if n else None

        tokens, full_tokens = sum(p.tokens for p in scored), sum(p.full_tokens for p in scored)
        out = {"name": self.name, "tau": self.tau, "n": n, "failed": len(self.predictions) - n,
               "score": mean([p.score for p in scored]), "tokens": mean([p.tokens for p in scored]),
               "kept": tokens / full_tokens if full_tokens else None,
               "prefill_ms": mean([p.prefill_ms for p in scored]), "generate_ms": mean([p.generate_ms for p in scored]),
               "errors": [{"id": p.id, "reason": p.error} for p in self.predictions.values() if p.error][:5]}
        if full is not None:
            both = [(p, full.predictions[i]) for i, p in self.predictions.items()
                    if p.error is None and i in full.predictions and full.predictions[i].error is None]
            out["agreement"] = sum(a.prediction == b.prediction for a, b in both) / len(both) if both else None
            full_score = full.summary(None)["score"]
            out["delta"] = None if out["score"] is None or full_score is None else out["score"] - full_score
        return out


class PredictionsFile:
    """JSON lines {"arm", "id", "prediction", "score", ...} with the task and model on each; appended, flushed."""

    def __init__(self, path: str, task: str, model: str, resume: bool):
        if is_url(path):
            raise ConfigError(f"--predictions {path}: a local file (URLs are not supported for predictions)")
        self.path, self.task, self.model = path, task, model
        self.earlier: list[Prediction] = []
        if os.path.exists(path):
            if not resume:
                raise ConfigError(f"--predictions {path} exists; add --resume to continue it, or name another file")
            self.earlier = self._read()
        self.handle: Any = None  # opened at the first write: a run refused before it writes leaves no file

    def _read(self) -> list[Prediction]:
        with open(self.path, "rb") as handle:
            data = handle.read()
        whole = data[:data.rfind(b"\n") + 1]  # a line cut by a killed run is dropped, and rewritten
        if len(whole) != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(len(whole))
        out = []
        for number, line in enumerate(whole.decode("utf-8", "replace").splitlines(), 1):
            try:
                record = json.loads(line)
                task, model = record.pop("task"), record.pop("model")
                prediction = Prediction(**record)
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{self.path}: line {number} is not a pixelprune eval prediction ({exc})") from None
            if (task, model) != (self.task, self.model):
                raise InputError(f"{self.path}: predictions of task {task} with model {model}, not task "
                                 f"{self.task} with {self.model}; --resume continues only the same run")
            out.append(prediction)
        return out

    def write(self, prediction: Prediction) -> None:
        if self.handle is None:
            self.handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held across writes)
        record = {"task": self.task, "model": self.model, **asdict(prediction)}
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
