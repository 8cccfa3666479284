"""prune_image: one image in, the row `compress` writes for that file out (no torch needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pixelprune_cli as pp
from pixelprune_cli import api
from pixelprune_cli.coding.pipeline import CodingConfig
from pixelprune_cli.coding.presets import resolve_preset
from pixelprune_cli.run.job import RunOptions

from conftest import SAMPLES, read_arrow

RUN = RunOptions(workers=1, progress=False)


def written_rows(files: list[Path], out: Path, config: CodingConfig) -> dict[str, dict]:
    api.compress([str(f) for f in files], str(out), config, run=RUN)
    return {row["id"]: row for row in read_arrow(out).to_pylist()}


def assert_same_row(ours: dict, written: dict) -> None:
    assert set(ours) == set(written)
    for key, value in written.items():
        if key == "pixels":
            got = np.frombuffer(b"".join(ours[key]), np.uint8)
            assert np.array_equal(got, np.asarray(value, np.uint8).reshape(-1)), key
        elif key == "tau":
            assert np.float32(ours[key]) == np.float32(value)
        else:
            assert ours[key] == value, key


@pytest.mark.parametrize("preset,tau,metric", [("qwen3-vl", 0.0, "max"), ("qwen2.5-vl", 0.03, "mae")])
def test_prune_image_equals_the_row_compress_writes(tmp_path, preset, tau, metric):
    files = [SAMPLES / "form.png", SAMPLES / "receipt_rgba.png", SAMPLES / "photo.jpg"]
    config = CodingConfig(resolve_preset(preset), "pred_2d", metric, tau)
    written = written_rows(files, tmp_path / "out.arrow", config)
    for path in files:
        expected = written[str(path)]  # several inputs: the id is the path as given
        options = dict(preset=preset, metric=metric, tau=tau, image_id=str(path))
        assert_same_row(pp.prune_image(path, **options), expected)
        assert_same_row(pp.prune_image(path.read_bytes(), **options), expected)
        with Image.open(path) as image:
            image.load()
            assert_same_row(pp.prune_image(image, **options), expected)


def test_prune_image_with_an_exif_rotation_decodes_as_compress_does(tmp_path):
    source = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(np.tile(np.arange(96, dtype=np.uint8)[None, :, None], (64, 1, 3)) * 2).save(source, exif=exif)
    written = written_rows([source], tmp_path / "out.arrow", CodingConfig())
    row = pp.prune_image(source)
    assert (row["source_width"], row["source_height"]) == (64, 96)
    assert_same_row(row, written["rotated.jpg"])


def test_prune_image_names_the_image_and_stage_when_it_cannot_decode(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"^broken\.png: decode failed: "):
        pp.prune_image(bad)
