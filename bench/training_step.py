"""One training step (forward and backward) of the scaled Qwen3-VL `bench-model` uses: pruned vs full rows.

Target (issue 24): the pruned step takes at most 1.1x the kept fraction of the
full step's time. Pruned: `PrunedCollator` on the page's cached row; full: the
processor's inputs for the same page and conversation, the same labels (the
assistant turn). Medians of alternating rounds, wall and process CPU time.

    .venv/bin/python bench/training_step.py [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model import BENCH_PAGES, PAGE_MAX_PIXELS, build_model, hf_models, timed
from PIL import Image

from pixelprune_cli import prune_image
from pixelprune_cli.coding.presets import resolve_preset
from pixelprune_cli.training import PrunedCollator

from inputs import make_inputs

MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "read the page"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a form with a table and a chart ."}]}]
TARGET = 1.1


def step(model, batch):
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = build_model(1, 1).train()
    tok = hf_models.tokenizer()
    folder = make_inputs()["folder"]
    preset = resolve_preset("qwen3-vl", max_pixels=PAGE_MAX_PIXELS)
    collator = PrunedCollator(tok, preset.to_meta())
    print(f"{'page':24s} {'kept':>12s} {'pruned':>9s} {'full':>9s} {'ratio':>6s} {'cpu ratio':>9s} {'target':>7s}")
    for name in BENCH_PAGES:
        path = folder / f"{name}.png"
        row = prune_image(path, preset=preset)
        pruned = collator([{**row, "messages": MESSAGES}])
        with Image.open(path) as image:
            image.load()
            full = hf_models.full_inputs(tok, preset, [tok.apply_chat_template(MESSAGES, tokenize=False)], [image])
        labels = full["input_ids"].clone()
        text = pruned["labels"][pruned["input_ids"] != hf_models.TOKEN_IDS["image_token_id"]]
        labels[full["input_ids"] == hf_models.TOKEN_IDS["image_token_id"]] = -100
        labels[full["input_ids"] != hf_models.TOKEN_IDS["image_token_id"]] = text
        full["labels"] = labels
        wall, cpu = timed({"pruned": lambda: step(model, pruned), "full": lambda: step(model, full)}, args.rounds)
        fraction = row["kept"] / row["tokens"]
        ratio, cpu_ratio = wall["pruned"] / wall["full"], cpu["pruned"] / cpu["full"]
        print(f"{name:24s} {row['kept']:5d}/{row['tokens']:<6d} {wall['pruned']:8.2f}s {wall['full']:8.2f}s "
              f"{ratio:6.2f} {cpu_ratio:9.2f} {'yes' if cpu_ratio <= TARGET * fraction else 'NO':>7s} "
              f"(<= {TARGET * fraction:.2f})", flush=True)


if __name__ == "__main__":
    main()
