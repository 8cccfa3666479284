"""Our BICUBIC resize against Pillow's `Image.resize`, side by side (`make bench` row 9).

Target 9: on the bench files that need a resize (the 2560x1440 screenshots are
already at a model size and are only copied), `resize.resize_bicubic` takes at
most 1/1.5 of the time of `np.asarray(image.resize(size, BICUBIC))`, the call it
replaced, on one thread. Both start from the decoded PIL image and end with the
same uint8 array; the rows check that byte for byte before timing. The info
rows split ours into the copy of Pillow's pixels into our buffer (which
Pillow's own resize does not pay on its input) and the kernel itself.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
from PIL import Image

TARGET = 1.5


def resize_rows(files: list[Path], quick: bool, Row, interleaved) -> tuple[list, dict]:
    from pixelprune_cli.coding.preprocess import convert_rgb, decode_image, model_size
    from pixelprune_cli.coding.presets import resolve_preset
    from pixelprune_cli.coding.resize import fast_path_ok, pillow_pixels, resize_array, resize_bicubic

    if not fast_path_ok():
        raise SystemExit("bench: pixelprune's resize differs from the installed Pillow; it would use Pillow's")
    preset = resolve_preset("qwen3-vl")
    cases = []
    for path in files:
        rgb = convert_rgb(decode_image(path.read_bytes()))
        size = model_size(rgb.size, preset)
        if size == rgb.size:
            continue
        theirs = np.asarray(rgb.resize(size, Image.Resampling.BICUBIC))
        if not np.array_equal(resize_bicubic(rgb, size), theirs):
            raise SystemExit(f"bench: our resize differs from Pillow's on {path.name}")
        cases.append((rgb, size, pillow_pixels(rgb)))

    def pillow():
        for rgb, size, _ in cases:
            np.asarray(rgb.resize(size, Image.Resampling.BICUBIC))

    def ours():
        for rgb, size, _ in cases:
            resize_bicubic(rgb, size)

    def copy_out():
        for rgb, _, _ in cases:
            pillow_pixels(rgb)

    def kernel():
        for _, size, array in cases:
            resize_array(array, size)

    cpu: dict[str, list[float]] = {}
    samples = interleaved({"pillow": pillow, "ours": ours, "copy": copy_out, "kernel": kernel},
                          3 if quick else 9, cpu=cpu)
    t = {name: statistics.median(v) for name, v in samples.items()}
    c = {name: statistics.median(v) for name, v in cpu.items()}
    n = len(cases)
    per = lambda s: f"{s / n * 1e3:.1f} ms"  # noqa: E731
    rows = [
        Row(9, f"resize vs Image.resize, {n} files (per image)", per(t["ours"]), per(t["pillow"]),
            t["pillow"] / t["ours"], f">= {TARGET}x faster", t["pillow"] / t["ours"] >= TARGET,
            t["ours"], t["pillow"]),
        Row(9, "  info: the same, process CPU time", per(c["ours"]), per(c["pillow"]), c["pillow"] / c["ours"],
            f"(>= {TARGET}x)", None, c["ours"], c["pillow"]),
        Row(9, "  info: of ours, copy out of Pillow vs kernel", per(t["copy"]), per(t["kernel"]),
            t["copy"] / t["kernel"], "-", None, t["copy"], t["kernel"]),
    ]
    return rows, {"seconds": samples, "cpu_seconds": cpu, "files": n}
