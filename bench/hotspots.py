"""Profile what `make bench` measures (needs pyinstrument: `.venv/bin/pip install pyinstrument`).

    .venv/bin/python bench/hotspots.py [compress|coder|all]

compress: three `compress -j1` runs over the bench folder (after a warm-up
run, so imports and first-call costs are left out).
coder: prune_tokens at tau=0.05 on the bench page and screenshot, 200 calls
each. Numba kernels show as the Python line that calls them, which is enough
to split the coder between its passes.

For native frames (Pillow, zlib, zstd) use py-spy instead, e.g.
    py-spy record --native -f raw -o prof.txt -- .venv/bin/python bench/hotspots.py compress
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inputs import WORK, make_inputs


def run_compress(made: dict, times: int) -> None:
    from pixelprune_cli.api import compress
    from pixelprune_cli.run.job import RunOptions

    out = WORK / "out"
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(times):
        compress([str(made["folder"])], str(out / "profile.arrow"), run=RunOptions(workers=1, progress=False),
                 overwrite=True)


def run_coder(made: dict, calls: int, images: list) -> None:
    from pixelprune_cli.coding.coder import prune_tokens

    for image in images:
        for _ in range(calls):
            prune_tokens(image, 32, "pred_2d", "max", 0.05)


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    made = make_inputs()
    from pixelprune_cli.coding.backends import resize_for_model
    from pixelprune_cli.coding.preprocess import decode_image
    from pixelprune_cli.coding.presets import resolve_preset

    images = [resize_for_model(decode_image(p.read_bytes()), resolve_preset()) for p in made["coder"].values()]
    run_compress(made, 1)  # warm-up: imports, Numba cache loads, pyarrow's first-call costs
    run_coder(made, 1, images)
    try:
        from pyinstrument import Profiler
    except ImportError:  # under py-spy, just run the workload
        if what in ("compress", "all"):
            run_compress(made, 3)
        if what in ("coder", "all"):
            run_coder(made, 200, images)
        return
    for name, job in (("compress", lambda: run_compress(made, 3)), ("coder", lambda: run_coder(made, 200, images))):
        if what not in (name, "all"):
            continue
        profiler = Profiler(interval=0.0005)
        profiler.start()
        job()
        profiler.stop()
        print(f"==== {name}")
        print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
