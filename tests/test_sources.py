"""Enumeration (`sources.plan`, `read_piece`, `sample`): ids, positions and samples, without reading images."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq

from pixelprune_cli.coding.pipeline import FailedImage
from pixelprune_cli.inputs import sources
from pixelprune_cli.inputs.pieces import ImageFile, ParquetRows, SourceCounts, piece_ids, piece_size

from conftest import SAMPLES_PARQUET


def folder_of(tmp_path: Path, count: int) -> Path:
    """count files named like images; planning never opens them, so they may be empty."""
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(count):
        (folder / f"img_{k:03d}.png").write_bytes(b"")
    return folder


def ids_of(pieces) -> list[str]:
    return [i for piece in pieces for i in piece_ids(piece)]


def test_plan_names_images_as_iter_items_does_with_one_and_several_inputs(tmp_path):
    folder = folder_of(tmp_path, 2)
    (folder / "notes.txt").write_text("skipped")
    counts = SourceCounts()
    one = list(sources.plan([str(folder)], counts=counts))
    assert one == [ImageFile("img_000.png", str(folder / "img_000.png")), ImageFile("img_001.png", str(folder / "img_001.png"))]
    assert counts.skipped_files == 1

    several = list(sources.plan([str(folder), str(SAMPLES_PARQUET)]))
    rows = pq.ParquetFile(SAMPLES_PARQUET).metadata.num_rows
    assert ids_of(several) == [f"{folder}/img_000.png", f"{folder}/img_001.png",
                               *[f"{SAMPLES_PARQUET}#{r}" for r in range(rows)]]
    assert several[-1] == ParquetRows(str(SAMPLES_PARQUET), str(SAMPLES_PARQUET), "image", 0, rows)
    items = list(sources.iter_items([str(folder), str(SAMPLES_PARQUET)]))
    assert [item.id for item in items] == ids_of(several)


def test_read_piece_reads_exactly_the_rows_of_a_parquet_run():
    whole = next(sources.plan([str(SAMPLES_PARQUET)]))
    table = pq.read_table(SAMPLES_PARQUET)
    for start, stop in [(0, 1), (3, 7), (9, 10), (0, 10)]:
        items = list(sources.read_piece(replace(whole, start=start, stop=stop), keep_columns=("name",)))
        assert [item.id for item in items] == [f"samples.parquet#{r}" for r in range(start, stop)]
        assert [item.extra["name"] for item in items] == table.column("name").to_pylist()[start:stop]
        assert [item.read() for item in items] == [cell["bytes"] for cell in table.column("image").to_pylist()[start:stop]]


def test_sample_of_more_than_the_input_is_every_image_in_order(tmp_path):
    folder = folder_of(tmp_path, 4)
    pieces, total = sources.sample([str(folder), str(SAMPLES_PARQUET)], size=100)
    assert total == 14
    assert ids_of(pieces) == ids_of(sources.plan([str(folder), str(SAMPLES_PARQUET)]))
    assert all(piece_size(p) == 1 for p in pieces)


def test_sample_is_seeded_sized_in_input_order_and_reads_single_rows(tmp_path):
    folder = folder_of(tmp_path, 6)
    inputs = [str(folder), str(SAMPLES_PARQUET)]  # 6 files, then 10 Parquet rows
    everything = ids_of(sources.plan(inputs))
    pieces, total = sources.sample(inputs, size=5, seed=3)
    picked = ids_of(pieces)
    assert total == 16 and len(picked) == len(set(picked)) == 5
    assert picked == sorted(picked, key=everything.index)  # input order
    assert ids_of(sources.sample(inputs, size=5, seed=3)[0]) == picked  # the same seed, the same sample
    assert any(ids_of(sources.sample(inputs, size=5, seed=s)[0]) != picked for s in range(4, 8))
    rows = [p for p in pieces if isinstance(p, ParquetRows)]
    assert all(p.size == 1 for p in rows)
    assert [item.id for p in rows for item in sources.read_piece(p)] == ids_of(rows)


def test_sample_gives_every_position_about_the_same_chance(tmp_path):
    folder = folder_of(tmp_path, 20)
    seen = Counter(i for seed in range(400) for i in ids_of(sources.sample([str(folder)], size=5, seed=seed)[0]))
    assert len(seen) == 20
    # Each file is expected 400 * 5/20 = 100 times (sd about 8.7); the bounds are over 4 sd away.
    assert all(60 <= n <= 140 for n in seen.values()), seen


def test_sample_keeps_enumeration_failures_as_pieces(tmp_path):
    folder = folder_of(tmp_path, 1)
    (folder / "loop.png").symlink_to(folder / "loop.png")
    pieces, total = sources.sample([str(folder)], size=10)
    assert total == 2
    assert [type(p) for p in pieces] == [ImageFile, FailedImage]
