"""How to store `pixels` in Parquet: layouts and writer options, timed against the Arrow IPC file.

The bench folder is coded once; its record batches (as the writer gets them)
are then written by each candidate in interleaved rounds. Prints, per
candidate, the median wall and CPU time of writing and of reading the file
back with pyarrow, and its bytes, each as a ratio to Arrow IPC (zstd).

    .venv/bin/python bench/parquet_layouts.py [--rounds 7]

Candidates: the Arrow layout list<fixed_size_list<uint8>> (what Parquet
outputs were before 0.2.0) with and without dictionaries, and three binary
layouts: one binary per kept token (list<binary>, what pixelprune writes),
one fixed_size_binary per token, one binary per row; then writer options on
list<binary>: statistics on pixels, page size, zstd level, lz4, no stored
Arrow schema, byte_stream_split (on fixed_size_binary, the only binary type
it takes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inputs import WORK, make_inputs

OUT = WORK / "layouts"


def coded_batches(folder: Path) -> list[pa.RecordBatch]:
    from pixelprune_cli.api import compress
    from pixelprune_cli.run.job import RunOptions

    OUT.mkdir(parents=True, exist_ok=True)
    reference = OUT / "reference.arrow"
    compress([str(folder)], str(reference), run=RunOptions(workers=2, progress=False), overwrite=True)
    with pa.memory_map(str(reference)) as source:
        reader = pa.ipc.open_file(source)
        return [reader.get_batch(i) for i in range(reader.num_record_batches)]


def token_bytes_of(batch: pa.RecordBatch) -> int:
    return batch.schema.field("pixels").type.value_type.list_size


def fixed_binary_per_token(column: pa.ListArray, width: int) -> pa.Array:
    tokens = column.flatten()
    values = pa.Array.from_buffers(pa.binary(width), len(tokens), [None, tokens.flatten().buffers()[1]])
    return pa.ListArray.from_arrays(column.offsets, values)


def binary_per_row(column: pa.ListArray, width: int) -> pa.Array:
    ends = (column.offsets.to_numpy().astype(np.int64) * width).astype(np.int32)
    return pa.Array.from_buffers(pa.binary(), len(column), [None, pa.py_buffer(ends), column.flatten().flatten().buffers()[1]])


def relayout(batches: list[pa.RecordBatch], make) -> list[pa.RecordBatch]:
    out = []
    for batch in batches:
        index = batch.schema.get_field_index("pixels")
        pixels = make(batch.column(index), token_bytes_of(batch))
        out.append(batch.set_column(index, pa.field("pixels", pixels.type), pixels))
    return out


def candidates(batches: list[pa.RecordBatch]) -> dict:
    """name -> (batches to write, ParquetWriter keywords); None keywords: Arrow IPC."""
    from pixelprune_cli.outputs.schema import parquet_schema, pixels_as_binary

    schema = parquet_schema(batches[0].schema)
    per_token = [pixels_as_binary(b, schema) for b in batches]
    flat = [f.name for f in batches[0].schema if not pa.types.is_nested(f.type)]
    ours = {"compression": "zstd", "use_dictionary": False, "write_statistics": flat}
    return {
        "arrow ipc, zstd": (batches, None),
        "fixed_size_list, pyarrow defaults": (batches, {"compression": "zstd"}),
        "fixed_size_list, no dictionary": (batches, {"compression": "zstd", "use_dictionary": False}),
        "list<binary>, pyarrow defaults": (per_token, {"compression": "zstd"}),
        "list<binary>, ours": (per_token, ours),
        "list<binary>, ours + pixels statistics": (per_token, {**ours, "write_statistics": True}),
        "list<binary>, ours, 8 MB pages": (per_token, {**ours, "data_page_size": 8 << 20}),
        "list<binary>, ours, 64 KB pages": (per_token, {**ours, "data_page_size": 64 << 10}),
        "list<binary>, ours, zstd level -1": (per_token, {**ours, "compression_level": -1}),
        "list<binary>, ours, zstd level 3": (per_token, {**ours, "compression_level": 3}),
        "list<binary>, ours, lz4": (per_token, {**ours, "compression": "lz4"}),
        "list<binary>, ours, store_schema off": (per_token, {**ours, "store_schema": False}),
        "list<fixed_size_binary>, ours": (relayout(batches, fixed_binary_per_token), ours),
        "list<fixed_size_binary>, byte_stream_split": (relayout(batches, fixed_binary_per_token),
                                                       {**ours, "use_byte_stream_split": ["pixels.list.element"]}),
        "binary per row, ours": (relayout(batches, binary_per_row), ours),
        "binary per row, pyarrow defaults": (relayout(batches, binary_per_row), {"compression": "zstd"}),
    }


def write(path: Path, batches: list[pa.RecordBatch], options: dict | None) -> None:
    with open(path, "wb") as sink:
        if options is None:
            writer = pa.ipc.new_file(sink, batches[0].schema, options=pa.ipc.IpcWriteOptions(compression="zstd"))
        else:
            writer = pq.ParquetWriter(sink, batches[0].schema, **options)
        for batch in batches:
            writer.write_batch(batch)
        writer.close()


def read(path: Path, options: dict | None) -> None:
    if options is None:
        with pa.memory_map(str(path)) as source:
            pa.ipc.open_file(source).read_all()
    else:
        pq.read_table(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    batches = coded_batches(make_inputs()["folder"])
    cases = candidates(batches)
    paths = {name: OUT / f"case-{i}" for i, name in enumerate(cases)}
    wall = {name: {"write": [], "read": []} for name in cases}
    cpu = {name: {"write": [], "read": []} for name in cases}
    names = list(cases)
    for r in range(args.rounds + 1):  # round 0 warms up
        for name in names[r % len(names):] + names[:r % len(names)]:
            data, options = cases[name]
            for step, fn in (("write", lambda: write(paths[name], data, options)),
                             ("read", lambda: read(paths[name], options))):
                c, t = time.process_time(), time.perf_counter()
                fn()
                if r:
                    wall[name][step].append(time.perf_counter() - t)
                    cpu[name][step].append(time.process_time() - c)
    pixels = sum(b.column("pixels").flatten().flatten().nbytes for b in batches)
    print(f"{sum(b.num_rows for b in batches)} images, {pixels / 1e6:.1f} MB of kept pixels, "
          f"{len(batches)} batches; medians of {args.rounds} rounds; ratios to Arrow IPC")
    base = names[0]
    med = lambda d, name, step: statistics.median(d[name][step])  # noqa: E731
    print(f"{'candidate':44s} {'write wall':>16s} {'write CPU':>16s} {'read wall':>16s} {'bytes':>16s}")
    for name in names:
        cells = []
        for d, step in ((wall, "write"), (cpu, "write"), (wall, "read")):
            v = med(d, name, step)
            cells.append(f"{v * 1e3:7.0f} ms {v / med(d, base, step):5.2f}x")
        size = paths[name].stat().st_size
        cells.append(f"{size / 1e6:7.2f} MB {size / paths[base].stat().st_size:5.2f}x")
        print(f"{name:44s} " + " ".join(f"{c:>16s}" for c in cells))


if __name__ == "__main__":
    main()
