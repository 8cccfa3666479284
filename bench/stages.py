"""Scratch diagnosis (not part of `make bench`): where compress spends its time, stage by stage.

    .venv/bin/python bench/stages.py [--extra-path DIR]

Prints, for the bench folder:
1. best-of-3 seconds per stage of the per-image work and of the writer
   (what `compress -j1` does, taken apart), next to the floor's stages;
2. each stage's speed-up on 2 threads (a stage near 1.0x holds the GIL);
3. the one-off cost of pyarrow's first `pa.array(numpy)` (it imports pandas);
4. with --extra-path pointing at a folder holding pyspng (pip install --target),
   its PNG decode time and whether its pixels equal Pillow's.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pixelprune_cli.coding.coder import code_refs
from pixelprune_cli.coding.pipeline import CodingConfig, code_array
from pixelprune_cli.coding.preprocess import convert_rgb, decode_image, smart_resize
from pixelprune_cli.coding.tokens import gather_tokens, layout
from pixelprune_cli.outputs.schema import output_schema, to_record_batch

from inputs import make_inputs


def best(fn, items, workers=1, rounds=3) -> float:
    """Best-of-rounds seconds to run fn over all items on `workers` threads."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        if workers == 1:
            for item in items:
                fn(item)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(fn, items))
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--extra-path", help="folder with pyspng installed (appended to sys.path)")
    args = parser.parse_args()
    files = make_inputs()["files"]
    config = CodingConfig()
    preset = config.preset
    ts = preset.token_size

    datas = [p.read_bytes() for p in files]
    decoded = [decode_image(d) for d in datas]
    rgbs = [convert_rgb(im) for im in decoded]
    sizes = [smart_resize(im.height, im.width, ts, preset.min_pixels, preset.max_pixels) for im in decoded]
    resized = [im.resize((w, h), Image.Resampling.BICUBIC) for im, (h, w) in zip(rgbs, sizes)]
    arrays = [np.asarray(im) for im in resized]
    refs = [code_refs(a, ts) for a in arrays]
    layouts = [layout(r) for r in refs]
    coded = [code_array("x", a, im.size, config) for a, im in zip(arrays, decoded)]
    schema = output_schema(config.to_meta(), preset.token_bytes)
    batch = to_record_batch(coded, schema)

    def write(codec):
        def run(_):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_file(sink, schema, options=pa.ipc.IpcWriteOptions(compression=codec)) as w:
                w.write_batch(batch)
        return run

    stages = [
        ("decode (Pillow, floor)", lambda d: decode_image(d), datas),
        ("convert_rgb (floor)", convert_rgb, decoded),
        ("  of which RGB->RGB copies", convert_rgb, [im for im in decoded if im.mode == "RGB"]),
        ("resize BICUBIC (floor)", lambda x: x[0].resize((x[1][1], x[1][0]), Image.Resampling.BICUBIC),
         list(zip(rgbs, sizes))),
        ("  of which same-size copies", lambda x: x[0].resize((x[1][1], x[1][0]), Image.Resampling.BICUBIC),
         [x for x in zip(rgbs, sizes) if x[0].size == (x[1][1], x[1][0])]),
        ("np.asarray (RGBX -> RGB copy)", np.asarray, resized),
        ("code_refs tau=0", lambda a: code_refs(a, ts), arrays),
        ("layout", layout, refs),
        ("gather_tokens", lambda x: gather_tokens(x[0], x[1][0], preset.patch_size, preset.merge_size),
         list(zip(arrays, layouts))),
        ("to_record_batch (all rows)", lambda _: to_record_batch(coded, schema), [0]),
        ("Arrow IPC write, zstd", write("zstd"), [0]),
        ("Arrow IPC write, lz4", write("lz4"), [0]),
        ("Arrow IPC write, none", write(None), [0]),
    ]
    print(f"{len(files)} files; kept pixels {sum(c.pixels.nbytes for c in coded) / 1e6:.1f} MB")
    print(f"{'stage':34s} {'1 thread':>9s} {'2 threads':>10s} {'speed-up':>9s}")
    for name, fn, items in stages:
        if not items:
            continue
        one = best(fn, items)
        two = best(fn, items, workers=2) if len(items) > 1 else float("nan")
        print(f"{name:34s} {one * 1e3:7.1f}ms {two * 1e3:8.1f}ms {one / two:8.2f}x")

    code = ("import time, numpy as np, pyarrow as pa, sys; t = time.perf_counter(); "
            "pa.array(np.zeros(3, np.int32)); print(time.perf_counter() - t, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
    print(f"first pa.array(numpy) in a new process: {float(out[0]) * 1e3:.0f} ms (imports pandas: {out[1]})")

    if args.extra_path:
        sys.path.append(args.extra_path)
        import pyspng

        same = all(np.array_equal(np.asarray(Image.open(io.BytesIO(d))), pyspng.load(d)) for d in datas)
        t_pil = best(lambda d: Image.open(io.BytesIO(d)).load(), datas)
        t_spng = best(pyspng.load, datas)
        t_back = best(Image.fromarray, [pyspng.load(d) for d in datas])
        print(f"PNG decode: Pillow {t_pil * 1e3:.0f} ms, pyspng {t_spng * 1e3:.0f} ms "
              f"(+ Image.fromarray {t_back * 1e3:.0f} ms to resize with Pillow); identical pixels: {same}")


if __name__ == "__main__":
    main()
