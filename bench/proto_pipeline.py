"""Scratch prototype (not part of `make bench`): what target 3 gains from four small changes.

    .venv/bin/python bench/proto_pipeline.py [--extra-path DIR_WITH_PYSPNG]

The per-image work of pipeline.process and the writer, redone with:
  a. no RGB -> RGB copy: an RGB image without a transparency key is used as it
     is (Image.convert("RGB") on an RGB image only copies it);
  b. no same-size resize: Pillow's resize to the image's own size is a copy;
  c. zero-copy Arrow rows: each image becomes its own record batch built with
     pa.Array.from_buffers over its numpy arrays (no np.concatenate of all the
     pixels, and no pa.array call, which imports pandas on first use);
  d. optionally (--extra-path) pyspng for 8-bit PNGs without transparency or
     EXIF, whose pixels equal Pillow's.
It checks that the rows equal those of api.compress, then times everything
interleaved against the floor (decode + convert + resize) and compress -j1,
in wall time and in process CPU time.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baselines  # noqa: E402
from inputs import WORK, make_inputs  # noqa: E402
from run import interleaved, med  # noqa: E402
from pixelprune_cli.api import RunOptions, compress  # noqa: E402
from pixelprune_cli.pipeline import CodingConfig, code_array  # noqa: E402
from pixelprune_cli.preprocess import decode_image, smart_resize, to_rgb  # noqa: E402
from pixelprune_cli.schema import output_schema  # noqa: E402

spng = None


def decode(data: bytes) -> Image.Image:
    if spng is not None and data[:8] == b"\x89PNG\r\n\x1a\n":
        head = Image.open(io.BytesIO(data))  # header only; getexif() would decode a PNG, so look for eXIf
        no_exif = data.find(b"eXIf", 0, data.find(b"IDAT")) < 0
        if head.mode in ("L", "RGB", "RGBA") and "transparency" not in head.info and no_exif:
            return Image.fromarray(spng.load(data))
    return decode_image(data)


def model_pixels(image: Image.Image, preset) -> np.ndarray:
    if image.mode != "RGB" or image.info.get("transparency") is not None:
        image = to_rgb(image)  # (a)
    h, w = smart_resize(image.height, image.width, preset.token_size, preset.min_pixels, preset.max_pixels)
    if (w, h) != image.size:  # (b)
        image = image.resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(image)


def _prim(values: np.ndarray, typ) -> pa.Array:
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(values)])


def row_batch(c, schema: pa.Schema) -> pa.RecordBatch:
    """One CodedImage as a one-row batch, sharing its numpy buffers (c)."""
    token_bytes = schema.field("pixels").type.value_type.list_size
    name = c.id.encode()

    def one(value, typ):
        return _prim(np.array([value], dtype=typ.to_pandas_dtype()), typ)

    def as_list(values, typ, width=None):
        inner = _prim(values.reshape(-1), typ)
        if width:
            inner = pa.FixedSizeListArray.from_arrays(inner, width)
        return pa.ListArray.from_arrays(_prim(np.array([0, len(values)], np.int32), pa.int32()), inner)

    columns = [
        pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(np.array([0, len(name)], np.int32)),
                                               pa.py_buffer(name)]),
        one(c.source_width, pa.int32()), one(c.source_height, pa.int32()),
        one(c.width, pa.int32()), one(c.height, pa.int32()),
        pa.FixedSizeListArray.from_arrays(_prim(np.array(c.grid_thw, np.int32), pa.int32()), 3),
        one(c.tokens, pa.int32()), one(c.kept, pa.int32()), one(c.tau, pa.float32()),
        as_list(c.kept_index, pa.int32()), as_list(c.index_map, pa.int32()),
        as_list(c.pixels, pa.uint8(), token_bytes),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def proto_compress(files, target: Path, config: CodingConfig, codec) -> None:
    schema = output_schema(config.to_meta(), config.preset.token_bytes)
    with open(target, "wb") as f, pa.ipc.new_file(f, schema, options=pa.ipc.IpcWriteOptions(compression=codec)) as w:
        for path in files:
            image = decode(path.read_bytes())
            coded = code_array(path.name, model_pixels(image, config.preset), image.size, config)
            w.write_batch(row_batch(coded, schema))


def main() -> None:
    global spng
    parser = argparse.ArgumentParser()
    parser.add_argument("--extra-path")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.extra_path:
        sys.path.append(args.extra_path)
        import pyspng as spng_module

        spng = spng_module
    made = make_inputs()
    files = made["files"]
    config = CodingConfig()
    out = WORK / "out"
    out.mkdir(parents=True, exist_ok=True)
    now, proto = out / "proto-now.arrow", out / "proto-new.arrow"
    run = RunOptions(workers=1, progress=False)
    compress([str(made["folder"])], str(now), config, run=run, overwrite=True)
    proto_compress(files, proto, config, "zstd")
    a = pa.ipc.open_file(str(now)).read_all().sort_by("id")
    b = pa.ipc.open_file(str(proto)).read_all()
    b = b.set_column(0, "id", pa.array([s.removesuffix(".png") for s in b["id"].to_pylist()])).sort_by("id")
    cols = [c for c in a.column_names if c != "id"]
    same = all(a[c].combine_chunks().equals(b[c].combine_chunks()) for c in cols)
    print(f"rows equal to compress's: {same}; sizes {now.stat().st_size / 1e6:.2f} MB vs {proto.stat().st_size / 1e6:.2f} MB")
    cpu: dict = {}
    samples = interleaved({
        "floor": lambda: baselines.pillow_floor(files),
        "compress -j1 zstd": lambda: compress([str(made["folder"])], str(now), config, run=run, overwrite=True),
        "proto zstd(1)": lambda: proto_compress(files, proto, config, "zstd"),
        "proto zstd(-1)": lambda: proto_compress(files, proto, config, pa.Codec("zstd", -1)),
    }, args.rounds, cpu=cpu)
    floor, floor_cpu = med(samples["floor"]), med(cpu["floor"])
    print("median wall and process CPU seconds (CPU time is steadier when other processes load the machine)")
    for name, values in samples.items():
        print(f"{name:20s} wall {med(values):6.3f} s {med(values) / floor:5.2f}x floor   "
              f"cpu {med(cpu[name]):6.3f} s {med(cpu[name]) / floor_cpu:5.2f}x floor")


if __name__ == "__main__":
    main()
