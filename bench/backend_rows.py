"""`make bench` rows for `--backend torchvision`: compress against the PIL backend and the processor it matches.

Three jobs on the same files, interleaved: `compress -j1` with the pil backend,
the same with the torchvision backend, and decode + transformers'
Qwen2VLImageProcessor (torchvision) to pixel_values. All information rows:
the targets are set on the pil backend (target 3).
"""

from __future__ import annotations

import io
import statistics
from pathlib import Path

from PIL import Image

from baselines import QWEN3_VL
from inputs import WORK

OUT = WORK / "out"


def torchvision_processor(paths, processor) -> int:
    """Read, decode and run the torchvision processor to pixel_values for every file; returns total values."""
    total = 0
    for path in paths:
        image = Image.open(io.BytesIO(Path(path).read_bytes()))
        image.load()
        total += processor(images=image, return_tensors="np")["pixel_values"].size
    return total


def backend_rows(folder: Path, files: list[Path], quick: bool, row_type, interleaved) -> tuple[list, dict]:
    from pixelprune_cli.api import compress
    from pixelprune_cli.coding.pipeline import CodingConfig
    from pixelprune_cli.run.job import RunOptions

    try:
        from transformers import Qwen2VLImageProcessor

        processor = Qwen2VLImageProcessor(**QWEN3_VL)
        torchvision_config = CodingConfig(backend="torchvision")
    except (ImportError, ValueError):  # ValueError: the ConfigError when torchvision cannot be imported
        return [row_type(3, "--backend torchvision: not measured (make install EXTRAS=test,torchvision)", "-", "-",
                         None, "(info)", None)], {}
    OUT.mkdir(parents=True, exist_ok=True)

    def ours(config: CodingConfig) -> None:
        summary = compress([str(folder)], str(OUT / f"backend-{config.backend}.arrow"), config,
                           run=RunOptions(workers=1, progress=False), overwrite=True)
        if summary.images != len(files) or summary.errors:
            raise SystemExit(f"bench: compress coded {summary.images} of {len(files)} images")

    samples = interleaved({"pil": lambda: ours(CodingConfig()), "torchvision": lambda: ours(torchvision_config),
                           "processor": lambda: torchvision_processor(files, processor)}, 1 if quick else 5)
    pil, tv, proc = (statistics.median(samples[k]) for k in ("pil", "torchvision", "processor"))
    n = len(files)
    rows = [
        row_type(3, f"  info: compress -j1 --backend torchvision vs --backend pil, {n} files", f"{tv:.2f} s",
                 f"{pil:.2f} s", tv / pil, "(time)", None, tv, pil),
        row_type(3, "  info: compress -j1 --backend torchvision vs decode+Qwen2VLImageProcessor", f"{tv:.2f} s",
                 f"{proc:.2f} s", proc / tv, "(faster)", None, tv, proc),
    ]
    return rows, {"seconds": samples}
