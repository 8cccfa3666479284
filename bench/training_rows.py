"""Collating training batches from the cache vs TRL's own collator on the same images (`make bench` row 12).

Target 12: `PrunedCollator` on 8 document/GUI rows read from a pixelprune
cache (`load_cache`, Arrow rows) takes at most 1/10 of the time of TRL's
`DataCollatorForVisionLanguageModeling` on the same 8 images from their PNG
bytes (decode plus the processor, Qwen2VLImageProcessorPil at the qwen3-vl
preset), on one thread. Info row: host bytes per row, the cache's uint8 kept
tokens against the float32 `pixel_values` TRL's collator builds. Both
collators get the same conversations and the offline tokenizer the tests use.
Skipped without the train extra (trl, datasets).
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
from pathlib import Path

TARGET = 10.0
KINDS = ("page_", "screen_", "phone_")  # documents and GUIs; the 2480x3508 scans are left out


def _conversation():
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "read the page"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a form with a table ."}]}]


def training_rows(files: list[Path], quick: bool, Row, interleaved) -> tuple[list, dict]:
    try:
        import torch
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling
    except ImportError as exc:
        print(f"bench: training rows skipped ({exc}; pip install 'pixelprune[train]')", file=sys.stderr)
        return [], {}
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image
    from transformers import Qwen2VLProcessor, Qwen2VLVideoProcessor

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from pixelprune_cli import api
    from pixelprune_cli.coding.pipeline import CodingConfig
    from pixelprune_cli.coding.presets import resolve_preset
    from pixelprune_cli.inputs.pieces import SourceOptions
    from pixelprune_cli.training import PrunedCollator, load_cache

    import hf_models as tiny

    torch.set_num_threads(1)
    pages = [f for f in files if f.name.startswith(KINDS)][:8]
    preset = resolve_preset("qwen3-vl")
    tok = tiny.tokenizer()
    tok.image_token = "<|image_pad|>"
    processor = Qwen2VLProcessor(image_processor=tiny.image_processor(preset), tokenizer=tok,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=tiny.CHAT_TEMPLATE)
    pngs = [p.read_bytes() for p in pages]
    with tempfile.TemporaryDirectory() as work:
        table = Path(work) / "data.parquet"
        pq.write_table(pa.table({"image": [{"bytes": b, "path": p.name} for b, p in zip(pngs, pages)],
                                 "messages": [_conversation() for _ in pages]}), table)
        api.compress([str(table)], f"{work}/cache.arrow", CodingConfig(preset=preset),
                     SourceOptions(keep_columns=("messages",)))
        rows = list(load_cache(f"{work}/cache.arrow"))
        ours = PrunedCollator(processor, f"{work}/cache.arrow")
        theirs = DataCollatorForVisionLanguageModeling(processor)

        def trl_batch():
            examples = []
            for data in pngs:
                with Image.open(io.BytesIO(data)) as image:
                    examples.append({"images": [image.convert("RGB")], "messages": _conversation()})
            return theirs(examples)

        full, pruned = trl_batch(), ours(rows)
        times = interleaved({"ours": lambda: ours(rows), "trl": trl_batch}, 2 if quick else 5)
        cache_bytes = sum(r.column("pixels").nbytes + r.column("kept_index").nbytes for r in rows)
    t_ours, t_trl = statistics.median(times["ours"]), statistics.median(times["trl"])
    full_bytes = full["pixel_values"].numel() * 4
    kept, tokens = int(pruned["image_kept_mask"].sum()), int(full["image_grid_thw"].prod(-1).sum()) // 4
    n = len(rows)
    out = [
        Row(12, f"collate {n} document/GUI rows: cache vs TRL's collator (decode + processor)",
            f"{t_ours * 1e3:.1f} ms", f"{t_trl * 1e3:.0f} ms", t_trl / t_ours, f">= {TARGET:.0f}x",
            t_trl / t_ours >= TARGET, t_ours, t_trl),
        Row(12, f"  info: host bytes per row, cache uint8 vs float32 pixel_values ({kept:,} of {tokens:,} tokens)",
            f"{cache_bytes / n / 1e6:.2f} MB", f"{full_bytes / n / 1e6:.1f} MB", full_bytes / cache_bytes, "-", None,
            cache_bytes / n, full_bytes / n),
    ]
    return out, {"training": times, "kept": kept, "tokens": tokens}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import Row, interleaved, render

    from inputs import make_inputs

    got, _ = training_rows(make_inputs()["files"], "--quick" in sys.argv, Row, interleaved)
    print(render(got))
