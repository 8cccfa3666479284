"""Multi-image rows: tables whose image column is a list (TRL's `images`), coded into one output row per sample.

The oracle for every image is the same image coded alone (`prune_image`),
which the single-image tests already hold to the processor; for the model
inputs it is transformers' processor given the row's list of images.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pixelprune_cli.coding.presets import resolve_preset
from pixelprune_cli.model import image_rows, model_inputs
from pixelprune_cli.outputs.multi_image import flatten_images
from pixelprune_cli.outputs.readers import iter_output_batches
from pixelprune_cli.pictures.restore import image_file_name, reconstruct
from pixelprune_cli.prune import prune_image

from conftest import SAMPLES, cli, manifest, one_line_error, read_arrow, shard_rows

MAX_PIXELS = 150_000  # small images: quick to code, several tokens still dropped
PRESET = resolve_preset("qwen3-vl", max_pixels=MAX_PIXELS)
OPTIONS = ("--max-pixels", MAX_PIXELS, "--workers", 1, "--no-progress")
ROWS = [["chart.png", "form.png"], ["gui_window.png"], ["slide.png", "table.png", "chart.png"]]


def picture(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # HF datasets' Image storage


def image_table(path, rows, column: str = "images", binary: bool = False, **extra_columns) -> None:
    """A TRL-style table: a list of HF image structs ({bytes, path}) per row (or of plain binary values),
    plus a carried column."""
    def cell(c):
        data = c if isinstance(c, bytes) or c is None else picture(c)
        return data if binary or data is None else {"bytes": data, "path": None}

    cells = pa.array([None if r is None else [cell(c) for c in r] for r in rows],
                     pa.list_(pa.binary() if binary else IMAGE_STRUCT))
    table = pa.table({column: cells, "messages": [f"sample {i}" for i in range(len(rows))], **extra_columns})
    pq.write_table(table, path)


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi")
    image_table(folder / "traj.parquet", ROWS)
    return folder / "traj.parquet"


@pytest.fixture(scope="module", params=["arrow", "parquet"])
def compressed(request, trajectories):
    out = trajectories.parent / f"out.{request.param}"
    if not out.exists():
        code, _, stderr = cli("compress", trajectories, "-o", out, "--keep-columns", "messages", *OPTIONS)
        assert code == 0, stderr
    return out


def alone(name: str) -> dict:
    """The oracle: the row `compress` writes for this image coded alone."""
    return prune_image(picture(name), PRESET)


def output_table(path) -> pa.Table:
    return pa.Table.from_batches(list(iter_output_batches(str(path))))


# ----------------------------------------------------------------- storage

def test_one_output_row_per_sample_with_id_and_carried_columns_per_row(compressed):
    table = output_table(compressed)
    assert table.num_rows == len(ROWS)
    assert table.column("id").to_pylist() == [f"traj.parquet#{i}" for i in range(len(ROWS))]
    assert table.column("messages").to_pylist() == [f"sample {i}" for i in range(len(ROWS))]
    assert [len(t) for t in table.column("tokens").to_pylist()] == [len(r) for r in ROWS]
    meta = json.loads(table.schema.metadata[b"pixelprune"])
    assert meta["images_per_row"] == "many" and meta["image_column"] == "images"
    if compressed.suffix == ".parquet":  # one binary value per kept token, one list level down
        assert pq.read_schema(compressed).field("pixels").type == pa.list_(pa.list_(pa.binary()))


def test_every_image_equals_the_same_image_coded_alone(compressed):
    table = output_table(compressed)
    for i, names in enumerate(ROWS):
        row = table.slice(i, 1).to_pylist()[0]
        for k, name in enumerate(names):
            expected = alone(name)
            for column in ("source_width", "source_height", "width", "height", "grid_thw", "tokens", "kept", "tau",
                           "kept_index", "index_map"):
                assert row[column][k] == expected[column], (name, column)
            assert [bytes(v) for v in row["pixels"][k]] == expected["pixels"], name


def test_every_image_restores_pixel_exactly_to_the_image_coded_alone(compressed, tmp_path):
    code, _, stderr = cli("restore", compressed, "-o", tmp_path / "png", "--no-progress")
    assert code == 0, stderr
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    expected_names = sorted(image_file_name(f"traj.parquet#{i}", k) for i, r in enumerate(ROWS) for k in range(len(r)))
    assert names == expected_names
    assert "traj.parquet%230~1.png" in names
    for i, row in enumerate(ROWS):
        for k, name in enumerate(row):
            restored = np.asarray(Image.open(tmp_path / "png" / image_file_name(f"traj.parquet#{i}", k)))
            single = alone(name)
            expected = reconstruct(single["index_map"], np.frombuffer(b"".join(single["pixels"]), np.uint8)
                                   .reshape(single["kept"], -1), single["width"], single["height"], PRESET)
            assert np.array_equal(restored, expected), name


def test_stats_counts_images_rows_and_tokens_per_image(compressed):
    code, stdout, stderr = cli("stats", compressed, "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["written"] == sum(map(len, ROWS)) and summary["rows_written"] == len(ROWS)
    per_image = {e["id"]: e for e in summary["per_image"]}
    for i, row in enumerate(ROWS):
        for k, name in enumerate(row):
            entry, single = per_image[f"traj.parquet#{i}~{k}"], alone(name)
            assert (entry["tokens"], entry["kept"]) == (single["tokens"], single["kept"])
    assert summary["tokens"] == sum(alone(n)["tokens"] for r in ROWS for n in r)


def test_show_draws_the_images_of_a_multi_image_output(compressed, tmp_path):
    code, _, stderr = cli("show", compressed, "-o", tmp_path / "sheet.png")
    assert code == 0, stderr
    code, _, stderr = cli("show", compressed, "--id", "traj.parquet#2~1", "-o", tmp_path / "one.png")
    assert code == 0, stderr
    code, _, stderr = cli("show", compressed, "--id", "traj.parquet#2", "-o", tmp_path / "row.png")
    assert code == 2
    one_line_error(stderr, "traj.parquet#2", "ROW~K")


# ----------------------------------------------------------------- the seam readers use

def per_row_oracle(batch: pa.RecordBatch) -> list[dict]:
    """flatten_images by a plain loop over rows as Python values."""
    images = []
    for row in batch.to_pylist():
        for k in range(len(row["tokens"])):
            images.append({"id": f"{row['id']}~{k}",
                           **{c: row[c][k] for c in row if c not in ("id", "messages")}})
    return images


@pytest.mark.parametrize("window", [(0, 3), (1, 2), (2, 1), (1, 0)])
def test_flatten_images_equals_a_per_row_loop_zero_copy(compressed, window):
    batch = output_table(compressed).combine_chunks().to_batches()[0].slice(*window)
    flat, offsets = flatten_images(batch)
    assert flat.to_pylist() == per_row_oracle(batch)
    assert offsets.tolist() == [0, *np.cumsum([len(t) for t in batch.column("tokens").to_pylist()]).tolist()]
    assert "messages" not in flat.schema.names
    assert json.loads(flat.schema.metadata[b"pixelprune"]).get("images_per_row") is None  # the single-image schema
    if flat.num_rows:  # the kept tokens' bytes are the batch's own buffer, not a copy
        assert flat.column("pixels").values.values.buffers()[1].address == \
            batch.column("pixels").values.values.values.buffers()[1].address


def test_flatten_images_repeats_carried_columns_when_asked(compressed):
    batch = output_table(compressed).combine_chunks().to_batches()[0]
    flat, _ = flatten_images(batch, repeat_carried=True)
    assert flat.column("messages").to_pylist() == [f"sample {i}" for i, r in enumerate(ROWS) for _ in r]


def test_flatten_images_passes_single_image_batches_through(tmp_path):
    out = tmp_path / "single.arrow"
    assert cli("compress", SAMPLES / "chart.png", "-o", out, *OPTIONS)[0] == 0
    batch = read_arrow(out).to_batches()[0]
    flat, offsets = flatten_images(batch)
    assert flat.equals(batch) and offsets.tolist() == [0, 1]


def test_model_inputs_of_a_multi_image_row_concatenate_its_images_inputs(compressed):
    row = output_table(compressed).slice(2, 1).to_pylist()[0]
    got = model_inputs(row, PRESET)
    singles = [model_inputs(alone(name), PRESET) for name in ROWS[2]]
    for key in ("pixel_values", "positions", "image_grid_thw"):
        assert np.array_equal(got[key], np.concatenate([s[key] for s in singles])), key
    assert got["image_grid_thw"].shape == (3, 3)
    assert [r["id"] for r in image_rows(row)] == [f"traj.parquet#2~{k}" for k in range(3)]


def test_model_inputs_of_a_multi_image_row_are_the_processors_rows_of_the_kept_tokens(compressed):
    pytest.importorskip("transformers", reason="the processor is the oracle")
    from transformers import Qwen2VLImageProcessorPil

    processor = Qwen2VLImageProcessorPil(
        patch_size=PRESET.patch_size, merge_size=PRESET.merge_size, temporal_patch_size=PRESET.temporal_patch_size,
        size={"shortest_edge": PRESET.min_pixels, "longest_edge": PRESET.max_pixels},
        image_mean=list(PRESET.image_mean), image_std=list(PRESET.image_std))
    row = output_table(compressed).slice(2, 1).to_pylist()[0]
    out = processor(images=[Image.open(io.BytesIO(picture(n))) for n in ROWS[2]], return_tensors="np")
    assert np.asarray(out["image_grid_thw"]).tolist() == row["grid_thw"]
    m2, start, expected = PRESET.merge_size ** 2, 0, []
    for kept_index, tokens in zip(row["kept_index"], row["tokens"]):
        patch_rows = (np.asarray(kept_index)[:, None] * m2 + np.arange(m2)).reshape(-1)
        expected.append(np.asarray(out["pixel_values"])[start + patch_rows])
        start += tokens * m2
    assert start == len(out["pixel_values"])
    got = model_inputs(row, PRESET)["pixel_values"]
    assert np.abs(got - np.concatenate(expected)).max() == 0


def test_prepare_inputs_takes_a_multi_image_row_as_its_images_in_order(compressed):
    pytest.importorskip("torch", reason="prepare_inputs builds tensors")
    pytest.importorskip("transformers", reason="prepare_inputs needs a tokenizer")
    import torch

    from pixelprune_cli.hf import prepare_inputs

    import hf_models

    tok = hf_models.tokenizer()
    row = output_table(compressed).slice(0, 1).to_pylist()[0]
    prompt = "<|vision_start|><|image_pad|><|vision_end|> a <|vision_start|><|image_pad|><|vision_end|> b"
    meta = json.loads(output_table(compressed).schema.metadata[b"pixelprune"])
    got = prepare_inputs(tok, prompt, [row], meta)
    expected = prepare_inputs(tok, prompt, [alone(n) for n in ROWS[0]], meta)
    assert set(got) == set(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    with pytest.raises(ValueError, match="2 rows were given"):
        prepare_inputs(tok, "<|image_pad|>", [row], meta)


# ----------------------------------------------------------------- failures, resume, refusals

def test_a_failing_image_fails_its_row_naming_its_position(tmp_path):
    image_table(tmp_path / "bad.parquet", [["chart.png", b"not an image", "form.png"], ["gui_window.png"],
                                           ["slide.png", None], [], None])
    out = tmp_path / "out.arrow"
    code, stdout, stderr = cli("compress", tmp_path / "bad.parquet", "-o", out, "--json", *OPTIONS)
    assert code == 1, stderr
    errors = {e["id"]: e for e in json.loads(stdout)["errors"]}
    assert errors["bad.parquet#0"]["stage"] == "decode" and "image 1 of 3" in errors["bad.parquet#0"]["reason"]
    assert "image 1 of 2" in errors["bad.parquet#2"]["reason"] and "null" in errors["bad.parquet#2"]["reason"]
    assert "empty" in errors["bad.parquet#3"]["reason"]
    assert "null" in errors["bad.parquet#4"]["reason"]
    assert read_arrow(out).column("id").to_pylist() == ["bad.parquet#1"]  # the good row, whole
    logged = [json.loads(line)["id"] for line in (tmp_path / "out.arrow.errors.jsonl").read_text().splitlines()]
    assert logged == ["bad.parquet#0", "bad.parquet#2", "bad.parquet#3", "bad.parquet#4"]
    assert "1 row (1 images)" in cli("compress", tmp_path / "bad.parquet", "-o", tmp_path / "o2.arrow", *OPTIONS)[2]


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_resume_redoes_a_missing_shard_of_multi_image_rows(trajectories, tmp_path, fmt):
    out, full = tmp_path / "out", tmp_path / "full"
    options = ("--shard-size", 1, "--shard-format", fmt, *OPTIONS)
    for target in (out, full):
        assert cli("compress", trajectories, "-o", f"{target}/", *options)[0] == 0
    (out / f"part-00001.{fmt}").unlink()
    code, stdout, stderr = cli("compress", trajectories, "-o", f"{out}/", "--resume", "--json", *options)
    assert code == 0, stderr
    assert [e["id"] for e in json.loads(stdout)["per_image"]] == ["traj.parquet#1~0"]
    assert manifest(out)["complete"] is True
    if fmt == "arrow":
        assert shard_rows(out).equals(shard_rows(full))
    assert output_table(out).to_pylist() == output_table(full).to_pylist()


def test_image_list_column_is_found_and_ambiguity_is_refused(tmp_path):
    image_table(tmp_path / "two.parquet", [["chart.png"]], thumb=[picture("form.png")])
    code, _, stderr = cli("compress", tmp_path / "two.parquet", "-o", tmp_path / "a.arrow", *OPTIONS)
    assert code == 2
    one_line_error(stderr, "images", "thumb", "--image-column")
    code, _, stderr = cli("compress", tmp_path / "two.parquet", "-o", tmp_path / "b.arrow", "--image-column", "images",
                          *OPTIONS)
    assert code == 0, stderr
    assert read_arrow(tmp_path / "b.arrow").column("tokens").to_pylist() == [[alone("chart.png")["tokens"]]]


def test_an_hf_list_of_images_feature_names_the_column(tmp_path):
    table = pa.table({"shots": [[{"bytes": picture("chart.png"), "path": None}]], "thumb": [picture("form.png")]})
    features = {"shots": {"_type": "List", "feature": {"_type": "Image"}}, "thumb": {"_type": "Value", "dtype": "binary"}}
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, tmp_path / "hf.parquet")
    code, _, stderr = cli("compress", tmp_path / "hf.parquet", "-o", tmp_path / "out.arrow", *OPTIONS)
    assert code == 0, stderr
    assert json.loads(read_arrow(tmp_path / "out.arrow").schema.metadata[b"pixelprune"])["image_column"] == "shots"


def test_tables_of_image_lists_and_single_images_are_not_mixed_in_one_output(trajectories, tmp_path):
    code, _, stderr = cli("compress", trajectories, SAMPLES / "chart.png", "-o", tmp_path / "out.arrow", *OPTIONS)
    assert code == 2
    one_line_error(stderr, "list of images", "separate outputs")
    assert not (tmp_path / "out.arrow").exists()


def test_the_ray_engine_refuses_multi_image_tables_in_one_line(trajectories, tmp_path):
    pytest.importorskip("ray", reason="the ray extra")
    code, _, stderr = cli("compress", trajectories, "-o", f"{tmp_path / 'out'}/", "--engine", "ray", *OPTIONS)
    assert code == 2
    one_line_error(stderr, "--engine ray", "multi-image")
    assert not (tmp_path / "out").exists()


def test_show_refuses_one_row_of_a_multi_image_table_in_one_line(trajectories, tmp_path):
    code, _, stderr = cli("show", trajectories, "--row", 0, "-o", tmp_path / "one.png")
    assert code == 2
    one_line_error(stderr, "traj.parquet#0", "2 images")
    code, _, stderr = cli("show", trajectories, "-o", tmp_path / "sheet.png", *OPTIONS[:2])
    assert code == 0, stderr


def test_ray_datasets_fail_a_list_cell_as_its_row_instead_of_crashing(tmp_path):
    from pixelprune_cli.coding.pipeline import CodingConfig
    from pixelprune_cli.ray import code_cells

    cells = [[{"bytes": picture("chart.png"), "path": None}] * 2, {"bytes": picture("chart.png"), "path": None}]
    first, second = code_cells(["a", "b"], cells, [{}, {}], CodingConfig(PRESET), tmp_path)
    assert first.id == "a" and "list of 2 images" in first.reason and "local engine" in first.reason
    assert second.id == "b" and second.kept == alone("chart.png")["kept"]


def test_flatten_images_reads_large_lists_as_other_writers_widen_them(compressed):
    batch = output_table(compressed).combine_chunks().to_batches()[0].slice(1, 2)
    wide = pa.RecordBatch.from_arrays(
        [c.cast(pa.large_list(c.type.value_type)) if pa.types.is_list(c.type) and f.name != "id" else c
         for f, c in zip(batch.schema, batch.columns)], names=batch.schema.names)
    flat, offsets = flatten_images(wide)
    assert flat.to_pylist() == per_row_oracle(batch) and offsets.tolist() == [0, 1, 4]


def test_a_list_of_binary_values_is_an_image_list_too(tmp_path):
    image_table(tmp_path / "raw.parquet", [["chart.png", "form.png"]], binary=True)
    code, _, stderr = cli("compress", tmp_path / "raw.parquet", "-o", tmp_path / "out.arrow", *OPTIONS)
    assert code == 0, stderr
    row = read_arrow(tmp_path / "out.arrow").to_pylist()[0]
    assert row["kept_index"] == [alone("chart.png")["kept_index"], alone("form.png")["kept_index"]]


def test_a_run_whose_every_row_fails_reports_rows(tmp_path):
    image_table(tmp_path / "bad.parquet", [[b"not an image"], ["chart.png", b""]])
    code, stdout, stderr = cli("compress", tmp_path / "bad.parquet", "-o", tmp_path / "out.arrow", "--json", *OPTIONS)
    assert code == 1
    summary = json.loads(stdout)
    assert (summary["rows_written"], summary["written"], summary["failed"]) == (0, 0, 2)
    assert "2 of 2 rows failed" in stderr
    assert read_arrow(tmp_path / "out.arrow").num_rows == 0
