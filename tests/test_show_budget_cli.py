"""The `show` command on each kind of input, and `--budget` through compress and stats."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from PIL import Image

from pixelprune_cli.cli.cli import main

from conftest import SAMPLES


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in (result.output or "")
    return result


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    out = tmp_path_factory.mktemp("show") / "samples.arrow"
    assert run("compress", SAMPLES / "samples.parquet", "-o", out, "--table", "none").exit_code == 0
    return out


def _png(path: Path) -> Image.Image:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image


def test_show_draws_an_image_file_at_its_resized_width(tmp_path):
    result = run("show", SAMPLES / "gui_window.png", "-o", tmp_path / "o.png")
    assert result.exit_code == 0, result.output
    picture = _png(tmp_path / "o.png")
    assert picture.width == 1280 and picture.height > 800  # 1280x800 needs no resize; a caption below


def test_show_draws_a_row_of_a_compressed_output_by_id(compressed, tmp_path):
    table = pa.ipc.open_file(compressed).read_all()
    row = table.to_pylist()[3]
    result = run("show", compressed, "--id", row["id"], "-o", tmp_path / "o.png")
    assert result.exit_code == 0, result.output
    assert _png(tmp_path / "o.png").width == row["width"]


def test_show_draws_a_row_of_a_parquet_image_table(tmp_path):
    result = run("show", SAMPLES / "samples.parquet", "--row", 3, "-o", tmp_path / "o.png", "--side-by-side")
    assert result.exit_code == 0, result.output
    picture = _png(tmp_path / "o.png")
    assert picture.width > 2 * 1280  # the slide (1280 wide) twice, side by side


def test_show_makes_a_contact_sheet_of_a_folder(tmp_path):
    result = run("show", SAMPLES, "-o", tmp_path / "sheet.png")
    assert result.exit_code == 0, result.output
    assert _png(tmp_path / "sheet.png").width >= 256


def test_show_samples_a_large_folder_and_says_so(tmp_path):
    from pixelprune_cli.pictures.contact_sheet import contact_tile_size, header_height

    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(12):
        Image.new("RGB", (64 + 8 * k, 48), (20 * k, 100, 200)).save(folder / f"img_{k:02d}.png")
    result = run("show", folder, "-o", tmp_path / "sheet.png", "--sample", 5, "--thumb", 64)
    assert result.exit_code == 0, result.output
    assert "a random sample of 5 of 12 images" in result.stderr
    tile_w, tile_h = contact_tile_size(64)
    assert _png(tmp_path / "sheet.png").size == (5 * tile_w, header_height(5 * tile_w) + tile_h)  # five tiles, one row
    result = run("show", folder, "-o", tmp_path / "all.png", "--sample", 0, "--thumb", 64)
    assert result.exit_code == 0 and "random sample" not in result.stderr
    assert _png(tmp_path / "all.png").size == (6 * tile_w, header_height(6 * tile_w) + 2 * tile_h)  # all twelve


def test_show_refuses_to_replace_a_png_without_overwrite(tmp_path):
    target = tmp_path / "o.png"
    target.write_bytes(b"keep")
    result = run("show", SAMPLES / "chart.png", "-o", target)
    assert result.exit_code == 2 and target.read_bytes() == b"keep"


def test_budget_keeps_at_most_n_tokens_or_flags_the_image(tmp_path):
    budget = 300
    out = tmp_path / "b.arrow"
    result = run("compress", SAMPLES / "samples.parquet", "-o", out, "--budget", budget, "--metric", "mae", "--json")
    assert result.exit_code == 0, result.output  # over-budget images do not change the exit code
    summary = json.loads(result.stdout)
    rows = pa.ipc.open_file(out).read_all().to_pylist()
    flagged = {e["id"] for e in summary["per_image"] if e.get("over_budget")}
    assert summary["over_budget"] == len(flagged)
    for row in rows:
        if row["id"] in flagged:
            assert row["kept"] > budget and row["tau"] == pytest.approx(0.1)
        else:
            assert row["kept"] <= budget and 0.0 <= row["tau"] <= 0.1 + 1e-7
    assert any(row["tau"] > 0 for row in rows)  # the budget made some images lossy
    meta = json.loads(pa.ipc.open_file(out).schema.metadata[b"pixelprune"])
    assert meta["budget"] == budget and meta["max_tau"] == 0.1


def test_stats_budget_reports_who_fits_at_tau_zero(tmp_path):
    result = run("stats", SAMPLES / "samples.parquet", "--budget", 400, "--metric", "mae", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    lossless = json.loads(run("stats", SAMPLES / "samples.parquet", "--json").stdout)
    fit = sum(1 for e in lossless["per_image"] if e["kept"] <= 400)
    assert summary["budget"]["fit_at_tau_0"] == fit
    assert summary["budget"]["images"] == 10
    assert set(summary["budget"]["tau_needed"]) >= {"p50", "p90"}


def test_budget_with_tau_is_a_usage_error():
    result = run("stats", SAMPLES / "chart.png", "--budget", 10, "--tau", "0.1")
    assert result.exit_code == 2 and "--max-tau" in result.output
