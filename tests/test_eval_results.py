"""The eval run's records without a model: per-arm totals, the predictions file and resuming it, the plot."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from pixelprune_cli.errors import ConfigError, InputError
from pixelprune_cli.evaluation.command import parse_taus
from pixelprune_cli.evaluation.output import draw_plot, report_json
from pixelprune_cli.evaluation.results import ArmTotals, Prediction, PredictionsFile


def test_totals_are_means_of_the_scored_rows_and_agreement_is_against_full():
    full, pruned = ArmTotals("full", None), ArmTotals("tau=0.02", 0.02)
    for i, (answer, score) in enumerate([("a", 1.0), ("b", 0.0), ("c", 0.5)]):
        full.add(Prediction("full", str(i), answer, score, 100, 100, 10.0, 20.0))
    pruned.add(Prediction("tau=0.02", "0", "a", 1.0, 40, 100, 5.0, 10.0))
    pruned.add(Prediction("tau=0.02", "1", "x", 1.0, 60, 100, 7.0, 12.0))
    pruned.add(Prediction("tau=0.02", "2", None, None, error="decode failed"))
    summary = pruned.summary(full)
    assert summary["n"] == 2 and summary["failed"] == 1
    assert summary["score"] == 1.0 and summary["delta"] == pytest.approx(0.5)
    assert summary["kept"] == 0.5 and summary["tokens"] == 50
    assert summary["agreement"] == 0.5
    assert summary["errors"] == [{"id": "2", "reason": "decode failed"}]
    assert full.summary(full)["agreement"] == 1.0


def test_predictions_file_resumes_drops_a_cut_line_and_refuses_another_run(tmp_path):
    path = tmp_path / "p.jsonl"
    first = PredictionsFile(str(path), "docvqa", "/m", resume=False)
    assert not path.exists()  # nothing written yet, nothing created
    first.write(Prediction("full", "0", "a", 1.0))
    first.write(Prediction("full", "1", "b", 0.0))
    first.close()
    path.write_text(path.read_text() + '{"task": "docvqa", "mo')  # a killed run's last line
    with pytest.raises(ConfigError, match="exists; add --resume"):
        PredictionsFile(str(path), "docvqa", "/m", resume=False)
    again = PredictionsFile(str(path), "docvqa", "/m", resume=True)
    assert [(p.arm, p.id, p.prediction) for p in again.earlier] == [("full", "0", "a"), ("full", "1", "b")]
    again.write(Prediction("full", "2", "c", 1.0))
    again.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["0", "1", "2"]
    with pytest.raises(InputError, match="predictions of task docvqa with model /m, not task chartqa"):
        PredictionsFile(str(path), "chartqa", "/m", resume=True)
    with pytest.raises(InputError, match="not task docvqa with /other"):
        PredictionsFile(str(path), "docvqa", "/other", resume=True)


def test_taus_parse_in_order_without_repeats_and_refuse_bad_values():
    assert parse_taus("0,0.02, 0.05,0.02") == (0.0, 0.02, 0.05)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        parse_taus("0,2")
    with pytest.raises(ConfigError, match="numbers separated by commas"):
        parse_taus("0,x")


def test_plot_draws_one_point_per_arm():
    arms = [{"name": "full", "kept": 1.0, "score": 0.8}, {"name": "tau=0.02", "kept": 0.4, "score": 0.7},
            {"name": "tau=0.1", "kept": None, "score": None}]
    buffer = io.BytesIO()
    draw_plot(report_json("docvqa", "/m", "ANLS", arms), buffer)
    pixels = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).reshape(-1, 3)
    red = int((pixels == (255, 0, 0)).all(axis=1).sum())
    blue = int((pixels == (0, 0, 255)).all(axis=1).sum())
    assert red > 50 and blue > 50  # the full arm's point and the pruned arm's
