"""The output files: exact schema, metadata, row invariants, ids, and readers.

samples/ is compressed once per configuration (module-scoped fixtures) through
the Python API and the CLI; every test then reads those files back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import PIL
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pixelprune_cli import __version__, api
from pixelprune_cli.cli.cli import main
from pixelprune_cli.coding.pipeline import CodingConfig
from pixelprune_cli.coding.preprocess import decode_image, smart_resize
from pixelprune_cli.coding.presets import PRESETS
from pixelprune_cli.inputs.pieces import SourceOptions
from pixelprune_cli.model import model_inputs
from pixelprune_cli.outputs.schema import output_schema, read_meta
from pixelprune_cli.run.job import RunOptions

from conftest import SAMPLES, SAMPLES_PARQUET, read_arrow

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
META_KEYS = {"version", "preset", "patch_size", "merge_size", "temporal_patch_size", "min_pixels",
             "max_pixels", "image_mean", "image_std", "method", "metric", "tau", "backend", "runtime"}
RUN = RunOptions(workers=2, progress=False)


def small_rows(table: pa.Table) -> list[dict]:
    """Rows without `pixels` (millions of Python ints otherwise)."""
    return table.drop_columns(["pixels"]).to_pylist()


def pixels_of(table: pa.Table, i: int) -> np.ndarray:
    """Row i's kept tokens as uint8 (kept, token_bytes)."""
    tokens = table.column("pixels")[i].values  # FixedSizeListArray, one entry per kept token
    return tokens.flatten().to_numpy().reshape(len(tokens), tokens.type.list_size)


def core_fields(token_bytes: int) -> list[tuple[str, pa.DataType]]:
    """The documented schema (docs/output-format.md, "Schema"), written out here on purpose."""
    return [
        ("id", pa.string()),
        ("source_width", pa.int32()),
        ("source_height", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("grid_thw", pa.list_(pa.int32(), 3)),
        ("tokens", pa.int32()),
        ("kept", pa.int32()),
        ("tau", pa.float32()),
        ("kept_index", pa.list_(pa.int32())),
        ("index_map", pa.list_(pa.int32())),
        ("pixels", pa.list_(pa.list_(pa.uint8(), token_bytes))),
    ]


def nested_types(t: pa.DataType):
    yield t
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        yield from nested_types(t.value_type)
    elif pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from nested_types(t.field(i).type)


def expected_folder_ids() -> list[str]:
    """Sorted file names; a Parquet file contributes NAME#ROW for each of its rows, in place."""
    ids = []
    for name in sorted(os.listdir(SAMPLES)):
        suffix = Path(name).suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            ids.append(name)
        elif suffix == ".parquet":
            ids.extend(f"{name}#{row}" for row in range(pq.read_metadata(SAMPLES / name).num_rows))
    return ids


class Output:
    """A compressed file, the config it was made with, and the carried columns."""

    def __init__(self, path: Path, config: CodingConfig, keep_columns: tuple[str, ...] = (),
                 image_column: str | None = None):
        self.path, self.config, self.keep_columns = path, config, keep_columns
        self.table = read_arrow(path)
        # the Parquet column the images came from, recorded when known before the run (not for folders)
        self.meta = {**config.to_meta(), **({"image_column": image_column} if image_column else {})}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def folder_output(workdir) -> Output:
    config = CodingConfig(preset=PRESETS["qwen3-vl"])
    summary = api.compress([str(SAMPLES)], str(workdir / "folder.arrow"), config, run=RUN)
    assert summary.failed == 0
    return Output(workdir / "folder.arrow", config)


@pytest.fixture(scope="module")
def parquet_output(workdir) -> Output:
    config = CodingConfig(preset=PRESETS["qwen3-vl"])
    sources = SourceOptions(keep_columns=("name", "kind"))
    api.compress([str(SAMPLES_PARQUET)], str(workdir / "rows.arrow"), config, sources, run=RUN)
    return Output(workdir / "rows.arrow", config, ("name", "kind"), "image")


@pytest.fixture(scope="module")
def cli_output(workdir) -> Output:
    """Non-default preset, method, metric and tau, through the CLI."""
    target = workdir / "custom.arrow"
    result = CliRunner().invoke(main, [
        "compress", str(SAMPLES_PARQUET), "-o", str(target), "--preset", "qwen2.5-vl", "--method", "serpentine",
        "--metric", "rmse", "--tau", "0.05", "--keep-columns", "kind", "--no-progress", "-j", "2", "--table", "none",
    ])
    assert result.exit_code == 0, result.output
    config = CodingConfig(preset=PRESETS["qwen2.5-vl"], method="serpentine", metric="rmse", tau=0.05)
    return Output(target, config, ("kind",), "image")


@pytest.fixture(params=["folder_output", "parquet_output", "cli_output"])
def output(request) -> Output:
    return request.getfixturevalue(request.param)


# ------------------------------------------------------------- schema and metadata

def test_schema_is_exactly_the_documented_columns(output):
    source_schema = pq.read_schema(SAMPLES_PARQUET)
    expected = core_fields(output.config.preset.token_bytes)
    expected += [(c, source_schema.field(c).type) for c in output.keep_columns]
    assert [(f.name, f.type) for f in output.table.schema] == expected
    built = output_schema(output.meta, output.config.preset.token_bytes,
                          [source_schema.field(c) for c in output.keep_columns])
    assert output.table.schema.equals(built, check_metadata=True)


def test_schema_uses_no_extension_types(output):
    for f in output.table.schema:
        for t in nested_types(f.type):
            assert not isinstance(t, pa.ExtensionType), f.name


def test_metadata_records_the_coding_config(output):
    raw = output.table.schema.metadata[b"pixelprune"]
    meta = json.loads(raw)
    preset, config = output.config.preset, output.config
    column = {"image_column": "image"} if "image_column" in output.meta else {}  # Parquet inputs name it
    assert set(meta) == META_KEYS | set(column)
    assert meta == {
        "version": __version__, "preset": preset.name, "patch_size": preset.patch_size,
        "merge_size": preset.merge_size, "temporal_patch_size": preset.temporal_patch_size,
        "min_pixels": preset.min_pixels, "max_pixels": preset.max_pixels,
        "image_mean": list(preset.image_mean), "image_std": list(preset.image_std),
        "method": config.method, "metric": config.metric, "tau": config.tau, **column,
        "backend": "pil", "runtime": {"pillow": PIL.__version__},
    }
    assert read_meta(output.table.schema) == meta


# ------------------------------------------------------------- rows

def test_row_lengths_and_maps_are_consistent(output):
    token_counts = pc.list_value_length(output.table.column("pixels")).to_pylist()
    for row, pixel_rows in zip(small_rows(output.table), token_counts):
        kept_index, index_map = np.array(row["kept_index"]), np.array(row["index_map"])
        assert row["kept"] == len(kept_index) == pixel_rows >= 1
        assert row["tokens"] == len(index_map)
        assert np.all(np.diff(kept_index) > 0), "kept_index must be strictly ascending"
        assert kept_index[0] == 0 and kept_index[-1] < row["tokens"]
        assert index_map.min() >= 0 and index_map.max() < row["kept"]
        assert np.array_equal(index_map[kept_index], np.arange(row["kept"]))
        assert row["tau"] == np.float32(output.config.tau)


def test_sizes_and_grid_follow_the_source_image(output):
    p = output.config.preset
    parquet_cells = pq.read_table(SAMPLES_PARQUET).column("image").to_pylist()
    for row in small_rows(output.table):
        if "#" in row["id"]:
            data = parquet_cells[int(row["id"].rsplit("#", 1)[1])]["bytes"]
        else:
            data = (SAMPLES / row["id"]).read_bytes()
        width, height = decode_image(data).size
        assert (row["source_width"], row["source_height"]) == (width, height)
        assert (row["height"], row["width"]) == smart_resize(height, width, p.token_size, p.min_pixels, p.max_pixels)
        grid = [1, row["height"] // p.patch_size, row["width"] // p.patch_size]
        assert row["grid_thw"] == grid
        assert row["tokens"] == (grid[1] // p.merge_size) * (grid[2] // p.merge_size)


def test_folder_ids_are_relative_paths_and_parquet_rows(folder_output):
    assert folder_output.table.column("id").to_pylist() == expected_folder_ids()


def test_parquet_ids_are_file_name_and_row(parquet_output):
    rows = pq.read_metadata(SAMPLES_PARQUET).num_rows
    assert parquet_output.table.column("id").to_pylist() == [f"samples.parquet#{i}" for i in range(rows)]


def test_carried_columns_equal_the_input_columns(parquet_output, cli_output):
    source = pq.read_table(SAMPLES_PARQUET)
    for output in (parquet_output, cli_output):
        for column in output.keep_columns:
            assert output.table.column(column).to_pylist() == source.column(column).to_pylist()


def test_same_image_from_a_file_and_a_parquet_cell_gives_the_same_row(folder_output, parquet_output):
    position = {image_id: i for i, image_id in enumerate(folder_output.table.column("id").to_pylist())}
    folder_rows = small_rows(folder_output.table)
    compared = 0
    for i, row in enumerate(small_rows(parquet_output.table)):
        j = position[row["name"]]
        twin = folder_rows[j]
        for column in ("width", "height", "tokens", "kept", "kept_index", "index_map"):
            assert row[column] == twin[column], (row["name"], column)
        assert np.array_equal(pixels_of(parquet_output.table, i), pixels_of(folder_output.table, j)), row["name"]
        compared += 1
    assert compared == 10


# ------------------------------------------------------------- other readers and formats

def test_polars_reads_the_same_values(folder_output):
    pl = pytest.importorskip("polars")
    from polars.testing import assert_frame_equal

    eager = pl.read_ipc(folder_output.path)
    lazy = pl.scan_ipc(folder_output.path).collect()
    expected = pl.from_arrow(folder_output.table)
    assert_frame_equal(eager, expected)
    assert_frame_equal(lazy, expected)
    token_bytes = folder_output.config.preset.token_bytes
    assert eager.schema["pixels"] == pl.List(pl.Array(pl.UInt8, token_bytes))
    assert eager.schema["grid_thw"] == pl.Array(pl.Int32, 3)
    small = pl.scan_ipc(folder_output.path).select("id", "kept").collect()
    assert small.rows() == list(zip(folder_output.table.column("id").to_pylist(),
                                    folder_output.table.column("kept").to_pylist()))


def test_hf_datasets_load_the_same_values(folder_output, workdir):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("arrow", data_files=str(folder_output.path), split="train",
                               cache_dir=str(workdir / "hf-cache"))
    assert ds.with_format("arrow")[:].equals(folder_output.table)
    meta = read_meta(folder_output.table.schema)
    first = folder_output.table.slice(0, 1).to_pylist()[0]
    ours, theirs = model_inputs(first, meta), model_inputs(ds[0], meta)
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)


def test_duckdb_reads_the_same_values_from_arrow_and_parquet_outputs(folder_output, workdir):
    import duckdb  # a test dependency: docs/output-format.md says duckdb reads both outputs
    import pyarrow.dataset as pads

    target = workdir / "for-duckdb.parquet"
    api.compress([str(SAMPLES)], str(target), folder_output.config, run=RUN, overwrite=True)
    expected = list(zip(*(folder_output.table.column(c).to_pylist() for c in ("id", "tokens", "kept"))))
    con = duckdb.connect()
    dataset = pads.dataset(str(folder_output.path), format="ipc")  # the documented way (docs/output-format.md): scanned through pyarrow
    con.register("arrow_output", dataset)
    query = "SELECT id, tokens, kept, len(kept_index), len(pixels), len(index_map) FROM {}"
    for source in ("arrow_output", f"read_parquet('{target}')"):
        rows = con.execute(query.format(source)).fetchall()
        assert sorted(r[:3] for r in rows) == sorted(expected), source
        assert all(k == kept == p and n == tokens for _, tokens, kept, k, p, n in rows), source


@pytest.fixture(scope="module")
def parquet_file(folder_output, workdir) -> Path:
    """samples/ compressed to Parquet with the same config as folder_output."""
    target = workdir / "folder.parquet"
    api.compress([str(SAMPLES)], str(target), folder_output.config, run=RUN)
    return target


@pytest.fixture(scope="module")
def old_layout_parquet(folder_output, workdir) -> Path:
    """A Parquet output as pixelprune wrote it before 0.2.0: the Arrow schema, pixels list<fixed_size_list>."""
    target = workdir / "old-layout.parquet"
    pq.write_table(folder_output.table, target)
    return target


def test_parquet_output_stores_each_kept_token_as_one_binary_value(folder_output, parquet_file):
    table = pq.read_table(parquet_file)
    token_bytes = folder_output.config.preset.token_bytes
    expected = [(name, pa.list_(pa.binary()) if name == "pixels" else t) for name, t in core_fields(token_bytes)]
    assert [(f.name, f.type) for f in table.schema] == expected
    assert read_meta(table.schema) == {**read_meta(folder_output.table.schema), "pixels_layout": "list<binary>"}
    assert read_meta(table.schema)["version"] == __version__
    tokens = pc.list_flatten(table.column("pixels"))
    assert pc.all(pc.equal(pc.binary_length(tokens), token_bytes)).as_py()
    assert table.drop_columns(["pixels"]).equals(folder_output.table.drop_columns(["pixels"]))
    for i in range(table.num_rows):  # token for token, the Arrow output's bytes
        assert table.column("pixels")[i].as_py() == [bytes(t) for t in pixels_of(folder_output.table, i)]
    metadata = pq.ParquetFile(parquet_file).metadata  # the measured writer options (docs/performance.md, "Parquet output")
    for g in range(metadata.num_row_groups):
        chunks = {metadata.row_group(g).column(c).path_in_schema: metadata.row_group(g).column(c)
                  for c in range(metadata.num_columns)}
        assert not chunks["pixels.list.element"].has_dictionary_page
        assert not chunks["pixels.list.element"].is_stats_set and chunks["kept"].is_stats_set


def test_pixelprune_reads_both_parquet_layouts_as_the_arrow_output(folder_output, parquet_file, old_layout_parquet):
    from pixelprune_cli.outputs.readers import iter_output_batches

    for path in (parquet_file, old_layout_parquet):
        table = pa.Table.from_batches(list(iter_output_batches(str(path))))
        assert table.schema.equals(folder_output.table.schema, check_metadata=False), path.name
        assert table.equals(folder_output.table), path.name


def parquet_rows_by_reader(path: Path, cache: Path) -> dict[str, list[dict]]:
    """Every row of a Parquet output as pyarrow, polars, duckdb and HF datasets (plain and numpy) give it."""
    import datasets
    import duckdb
    import polars as pl

    relation = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
    hf = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(cache))
    return {
        "pyarrow": pq.read_table(path).to_pylist(),
        "polars": pl.read_parquet(path).to_dicts(),
        "duckdb": [dict(zip(relation.columns, values)) for values in relation.fetchall()],
        "datasets": list(hf),
        "datasets numpy": list(hf.with_format("numpy")),
    }


def test_a_row_read_from_parquet_gives_bit_identical_model_inputs_to_the_arrow_row(folder_output, parquet_file, workdir):
    arrow_meta, parquet_meta = read_meta(folder_output.table.schema), read_meta(pq.read_schema(parquet_file))
    arrow_rows = {row["id"]: {**row, "pixels": pixels_of(folder_output.table, i)}
                  for i, row in enumerate(small_rows(folder_output.table))}
    first = folder_output.table.slice(0, 1).to_pylist()[0]  # one row in the documented list form too
    arrow_rows[first["id"]] = first
    for reader, rows in parquet_rows_by_reader(parquet_file, workdir / "hf-parquet-cache").items():
        assert sorted(str(row["id"]) for row in rows) == sorted(arrow_rows), reader
        for row in rows:
            ours, theirs = model_inputs(row, parquet_meta), model_inputs(arrow_rows[str(row["id"])], arrow_meta)
            for key in theirs:
                assert ours[key].dtype == theirs[key].dtype and ours[key].shape == theirs[key].shape, (reader, key)
                assert ours[key].tobytes() == theirs[key].tobytes(), (reader, row["id"], key)


def restored_pngs(path: Path, out: Path) -> dict[str, bytes]:
    api.restore(str(path), str(out))
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_restore_stats_and_show_read_parquet_outputs_as_the_arrow_output(folder_output, parquet_file,
                                                                         old_layout_parquet, workdir):
    from pixelprune_cli.pictures.show import read_output_row

    def stats_rows(path):
        return [(e.id, e.tokens, e.kept) for e in api.stats_of_output(str(path)).iter_entries()]

    expected_pngs = restored_pngs(folder_output.path, workdir / "restored-arrow")
    expected_stats = stats_rows(folder_output.path)
    last = folder_output.table.num_rows - 1
    expected_row, _ = read_output_row(str(folder_output.path), row=last)
    show = ["show", "--row", str(last), "-o"]
    drawn = CliRunner().invoke(main, [*show, str(workdir / "shown-arrow.png"), str(folder_output.path)])
    assert drawn.exit_code == 0, drawn.output
    assert len(expected_pngs) == len(expected_stats) == folder_output.table.num_rows
    for path in (parquet_file, old_layout_parquet):
        assert restored_pngs(path, workdir / f"restored-{path.stem}") == expected_pngs, path.name
        assert stats_rows(path) == expected_stats, path.name
        row, _meta = read_output_row(str(path), row=last)
        assert set(row) == set(expected_row)
        assert all(np.array_equal(row[k], expected_row[k]) for k in row), path.name
        drawn = CliRunner().invoke(main, [*show, str(workdir / f"shown-{path.stem}.png"), str(path)])
        assert drawn.exit_code == 0, drawn.output
        assert (workdir / f"shown-{path.stem}.png").read_bytes() == (workdir / "shown-arrow.png").read_bytes()


def test_a_parquet_output_with_pixels_of_the_wrong_length_is_refused_in_one_line(folder_output, parquet_file, workdir):
    table = pq.read_table(parquet_file)
    cut = pa.array([[bytes(t)[:-1] for t in row] for row in table.column("pixels").to_pylist()], pa.list_(pa.binary()))
    bad = workdir / "cut-tokens.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("pixels"), "pixels", cut), bad)
    result = CliRunner().invoke(main, ["restore", str(bad), "-o", str(workdir / "restored-cut")])
    assert result.exit_code == 2, result.output
    assert "cut-tokens.parquet" in result.stderr and "not all 3072 bytes" in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_stdout_is_an_arrow_ipc_stream_with_the_same_rows(folder_output, workdir):
    result = CliRunner().invoke(main, ["compress", str(SAMPLES), "-o", "-", "--no-progress", "-j", "2"])
    assert result.exit_code == 0, result.stderr
    reader = pa.ipc.open_stream(result.stdout_bytes)
    table = reader.read_all()
    assert read_meta(reader.schema) == read_meta(folder_output.table.schema)
    assert table.equals(folder_output.table)
    # A stream is what datasets.Dataset.from_file expects.
    datasets = pytest.importorskip("datasets")
    saved = workdir / "stream.arrow"
    saved.write_bytes(result.stdout_bytes)
    assert datasets.Dataset.from_file(str(saved)).with_format("arrow")[:].equals(folder_output.table)
