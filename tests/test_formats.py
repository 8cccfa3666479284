"""The format registry is what every command uses, and the stages depend on each other one way only."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pixelprune_cli import api
from pixelprune_cli.cli.cli import main
from pixelprune_cli.coding.pipeline import CodingConfig
from pixelprune_cli.outputs.formats import PARQUET, TABLE_FORMATS, format_of
from pixelprune_cli.outputs.readers import compressed_meta, iter_output_batches, output_rows
from pixelprune_cli.outputs.schema import output_schema, parquet_schema, pixels_as_binary, to_record_batch
from pixelprune_cli.records import CodedImage
from pixelprune_cli.run.job import RunOptions

from conftest import SAMPLES

IMAGE = SAMPLES / "chart.png"


@pytest.mark.parametrize("name", ["out.txt", "out", "out.png"])
def test_unknown_output_suffix_is_refused_with_the_known_ones(tmp_path, name):
    result = CliRunner().invoke(main, ["compress", str(IMAGE), "-o", str(tmp_path / name), "--no-progress"])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.count("\n") == 0 and str(tmp_path / name) in message
    for fmt in TABLE_FORMATS.values():
        for suffix in fmt.suffixes:
            assert suffix in message
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, not even a lock


@pytest.mark.parametrize("suffix", sorted({s for f in TABLE_FORMATS.values() for s in f.suffixes}))
def test_every_registered_suffix_is_written_and_read_back_in_its_format(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    summary = api.compress([str(IMAGE)], str(out), run=RunOptions(workers=1, progress=False))
    assert summary.written == 1
    fmt = format_of(out)
    magic = b"PAR1" if fmt.name == "parquet" else b"ARROW1"
    assert out.read_bytes()[:len(magic)] == magic  # the bytes are the format the name says
    assert compressed_meta(str(out))["method"] == "pred_2d"
    assert output_rows(str(out)) == 1
    assert [b.num_rows for b in iter_output_batches(str(out), ["id"])] == [1]


def test_shard_format_choices_are_the_registry():
    result = CliRunner().invoke(main, ["compress", "--help"])
    for name in TABLE_FORMATS:
        assert name in result.output


def test_sources_does_not_import_the_coding_stage():
    """Data flows one way: the input stage must not depend on the stages after it."""
    code = ("import sys, pixelprune_cli.inputs.sources; "
            "later = [m for m in ('pixelprune_cli.coding.pipeline', 'pixelprune_cli.coding.coder', 'pixelprune_cli.outputs.writer', "
            "'pixelprune_cli.report.report', 'pixelprune_cli.api') if m in sys.modules]; "
            "print(later)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _coded_rows(token_bytes: int, kept_counts: list[int]) -> list[CodedImage]:
    """Rows of random kept pixels (no two tokens alike), as the workers hand them to the writer."""
    rng = np.random.default_rng(0)
    rows = []
    for n, kept in enumerate(kept_counts):
        tokens = kept + 3
        rows.append(CodedImage(
            id=f"img{n}", source_width=64, source_height=32 * tokens, width=32, height=32 * tokens,
            grid_thw=(1, 2 * tokens, 2), tokens=tokens, kept=kept, tau=0.0,
            kept_index=np.arange(kept, dtype=np.int32), index_map=np.minimum(np.arange(tokens), kept - 1).astype(np.int32),
            pixels=rng.integers(0, 256, (kept, token_bytes), dtype=np.uint8)))
    return rows


def test_parquet_writer_stores_each_call_as_one_row_group_of_the_arrow_rows(tmp_path):
    config = CodingConfig()
    schema = output_schema(config.to_meta(), config.preset.token_bytes)
    batches = [_coded_rows(config.preset.token_bytes, [5, 1]), _coded_rows(config.preset.token_bytes, [7])]
    path = tmp_path / "out.parquet"
    with open(path, "wb") as handle:
        writer = PARQUET.open_writer(handle, schema, "zstd")
        for rows in batches:
            writer.write_rows(rows)
        writer.close()
    parquet = pq.ParquetFile(path)
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)] == [2, 1]
    layout = parquet_schema(schema)
    expected = pa.Table.from_batches([pixels_as_binary(to_record_batch(rows, schema), layout) for rows in batches])
    assert parquet.read().equals(expected)  # the layout the Arrow batch converts to, value for value
    read_back = pa.Table.from_batches(list(PARQUET.iter_batches(path, None)))
    assert read_back.equals(pa.Table.from_batches([to_record_batch(rows, schema) for rows in batches]))


def test_parquet_writer_reads_pixels_where_the_workers_left_them():
    """No Python-side copy of a batch's pixels: the peak stays a small part of one image, not the batch."""
    config = CodingConfig()
    schema = output_schema(config.to_meta(), config.preset.token_bytes)
    rows = _coded_rows(config.preset.token_bytes, [800] * 4)  # 4 images of 2.5 MB
    writer = PARQUET.open_writer(pa.BufferOutputStream(), schema, "zstd")  # a sink outside Python's allocator
    tracemalloc.start()
    try:
        writer.write_rows(rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    writer.close()
    assert peak < rows[0].pixels.nbytes / 4, f"{peak:,} bytes allocated while writing"
