"""`restore`: lossless at tau=0, within tau per token otherwise, and safe file names.

The reference for every restored PNG is the image as the model sees it,
`resize_for_model(decode_image(bytes))`, computed here from the input bytes.
Per-token errors are measured in numpy with the formulas of docs/models.md, not with
the coder's integer limits.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from pixelprune_cli import api
from pixelprune_cli.cli.cli import main
from pixelprune_cli.coding.backends import resize_for_model
from pixelprune_cli.coding.pipeline import CodingConfig
from pixelprune_cli.coding.preprocess import decode_image
from pixelprune_cli.coding.presets import PRESETS
from pixelprune_cli.pictures.restore import file_name_for
from pixelprune_cli.run.job import RunOptions

from conftest import SAMPLE_IMAGES, SAMPLES, SAMPLES_PARQUET, token_errors

RUN = RunOptions(workers=2, progress=False)


def input_bytes() -> dict[str, bytes]:
    """Every image of samples/ by the id a folder compress gives it."""
    found = {p.name: p.read_bytes() for p in SAMPLE_IMAGES}
    cells = pq.read_table(SAMPLES_PARQUET, columns=["image"]).column("image").to_pylist()
    found.update({f"samples.parquet#{i}": cell["bytes"] for i, cell in enumerate(cells)})
    return found


@pytest.fixture(scope="module")
def sources() -> dict[str, bytes]:
    return input_bytes()


_resized: dict[tuple[str, str], np.ndarray] = {}


def resized(sources: dict[str, bytes], image_id: str, preset_name: str) -> np.ndarray:
    key = (image_id, preset_name)
    if key not in _resized:
        _resized[key] = resize_for_model(decode_image(sources[image_id]), PRESETS[preset_name])
    return _resized[key]


def read_rows(path: Path) -> list[dict]:
    """id, kept_index and tokens of each row of an Arrow IPC file (no pixels)."""
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    return table.select(["id", "tokens", "kept", "kept_index", "width", "height"]).to_pylist()


def restored(folder: Path, image_id: str) -> np.ndarray:
    with Image.open(folder / file_name_for(image_id)) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


# ------------------------------------------------------------- lossless at tau = 0

def test_restore_at_tau_zero_is_bit_exact_for_every_sample(tmp_path, sources):
    out = tmp_path / "out.arrow"
    api.compress([str(SAMPLES)], str(out), CodingConfig(preset=PRESETS["qwen3-vl"]), run=RUN)
    summary = api.restore(str(out), str(tmp_path / "restored"))
    rows = read_rows(out)
    assert sorted(r["id"] for r in rows) == sorted(sources)
    assert summary.images == len(rows) == len(list((tmp_path / "restored").iterdir()))
    assert any(r["kept"] < r["tokens"] for r in rows)  # something was actually dropped
    for row in rows:
        expected = resized(sources, row["id"], "qwen3-vl")
        got = restored(tmp_path / "restored", row["id"])
        assert got.shape == expected.shape == (row["height"], row["width"], 3)
        assert np.array_equal(got, expected), row["id"]


def test_cli_restore_at_tau_zero_is_bit_exact_with_qwen2_tokens(tmp_path, sources):
    out = tmp_path / "out.arrow"
    runner = CliRunner()
    result = runner.invoke(main, ["compress", str(SAMPLES_PARQUET), "-o", str(out), "--preset", "qwen2-vl",
                                  "--no-progress", "-j", "2", "--table", "none"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["restore", str(out), "-o", str(tmp_path / "restored"), "--table", "none"])
    assert result.exit_code == 0, result.output
    for row in read_rows(out):
        assert np.array_equal(restored(tmp_path / "restored", row["id"]), resized(sources, row["id"], "qwen2-vl"))


# ------------------------------------------------------------- within tau per token

@pytest.mark.parametrize("tau,metric,method", list(itertools.product(
    (0.02, 0.1), ("max", "mae", "rmse"), ("pred_2d", "raster", "serpentine"))))
def test_each_restored_token_is_within_tau(tmp_path, sources, tau, metric, method):
    preset = PRESETS["qwen3-vl"]
    out = tmp_path / "out.arrow"
    config = CodingConfig(preset=preset, method=method, metric=metric, tau=tau)
    api.compress([str(SAMPLES_PARQUET)], str(out), config, run=RUN)
    api.restore(str(out), str(tmp_path / "restored"))
    lossy_tokens = 0
    for row in read_rows(out):
        errors = token_errors(restored(tmp_path / "restored", row["id"]), resized(sources, row["id"], "qwen3-vl"),
                              preset.token_size, metric)
        assert errors.shape == (row["tokens"],)
        assert errors.max() <= tau, (row["id"], float(errors.max()))
        assert np.all(errors[row["kept_index"]] == 0), row["id"]  # kept tokens are stored exactly
        lossy_tokens += int(np.count_nonzero(errors))
    assert lossy_tokens > 0  # tau > 0 did drop some tokens that are not exact copies


# ------------------------------------------------------------- file names

def _long_id(n: int, tail: str = "") -> str:
    return "x" * n + tail


TRICKY_IDS = [
    "a/b.png", "a%2Fb.png", "a%252Fb.png", "a_2Fb.png", "a/b/c.png", "a\\b.png", "/abs/path.png",
    "x.parquet#3", "x.parquet%233", "x.parquet#30", "x.parquet#3.png",
    "..", ".", "...", "", " ", "a b.png", "a+b.png", "a%20b.png", "../../etc/passwd", "./a.png",
    "a.png", "A.png", "a.png.png", "a?b=c&d", "%", "%%", "%2", "\x00nul", "tab\there", "line\nbreak",
    "caf\u00e9.png", "cafe\u0301.png", "\u65e5\u672c.png", "\U0001f600.png",
    _long_id(300), _long_id(300, "y"), _long_id(179, "/y"), _long_id(180, "/y"), _long_id(199), _long_id(200),
    _long_id(201), "/" * 80, "/" * 81, "#" * 70,
]


def test_file_names_are_distinct_for_distinct_ids():
    names = [file_name_for(i) for i in TRICKY_IDS]
    assert len(set(TRICKY_IDS)) == len(TRICKY_IDS)
    collisions = [(a, b) for (a, na), (b, nb) in itertools.combinations(zip(TRICKY_IDS, names), 2) if na == nb]
    assert not collisions


def test_file_names_stay_flat_short_and_png():
    for image_id in TRICKY_IDS:
        name = file_name_for(image_id)
        assert "/" not in name and "\\" not in name and "\x00" not in name, image_id
        assert name not in (".", "..") and name.endswith(".png"), image_id
        assert len(name.encode()) <= 255, image_id  # a single path component on common filesystems


def test_file_names_are_deterministic_and_documented():
    assert file_name_for("sub/a.png") == "sub%2Fa.png.png"
    assert file_name_for("x.parquet#3") == "x.parquet%233.png"
    # a long id keeps its first 180 characters and adds '~' and 16 hex digits of the SHA-1 of the whole id
    long_id = _long_id(300, "/y")
    assert file_name_for(long_id) == "x" * 180 + "~" + hashlib.sha1(long_id.encode()).hexdigest()[:16] + ".png"
    assert file_name_for("x" * 200) == "x" * 200 + ".png"  # 200 characters still fit whole
    assert file_name_for("a~b c") == "a%7Eb%20c.png"  # '~' is kept for shortened names


def test_short_id_cannot_forge_a_truncated_name():
    long_id = _long_id(201)
    forged = "x" * 180 + "~" + hashlib.sha1(long_id.encode()).hexdigest()[:16]
    assert file_name_for(forged) != file_name_for(long_id)
