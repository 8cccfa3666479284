"""One training step (forward and backward) of the scaled Qwen3-VL `bench-model` uses: pruned vs full rows (row 13).

Target 13 (issue 24): the pruned step takes at most 1.1x the kept fraction of
the full step's time, judged on process CPU time (steadier than wall time on a
shared machine; the wall ratio is the info row under it). Pruned:
`PrunedCollator` on the page's cached row; full: the processor's inputs for
the same page and conversation, the same labels (the assistant turn). The
model is bench/model.py's (1 ViT block, 1 LLM layer at Qwen3-VL-2B's widths),
pages capped at about 1,024 tokens; one warm-up step each, then alternating
rounds. Skipped without torch, transformers or datasets.

    .venv/bin/python bench/training_step.py [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "read the page"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a form with a table and a chart ."}]}]
TARGET = 1.1
PAGES = ("page_1700x2200_a", "phone_1170x2532_a")  # documents and GUIs that keep 57-62% of their tokens


def step(model, batch) -> None:
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()


def _batches(name: str, folder: Path, tok, collator, preset):
    """The pruned batch, the full batch with the same labels, and the page's token counts."""
    from model import hf_models
    from PIL import Image

    from pixelprune_cli import prune_image

    path = folder / f"{name}.png"
    row = prune_image(path, preset=preset)
    pruned = collator([{**row, "messages": MESSAGES}])
    with Image.open(path) as image:
        image.load()
        full = hf_models.full_inputs(tok, preset, [tok.apply_chat_template(MESSAGES, tokenize=False)], [image])
    image_id = hf_models.TOKEN_IDS["image_token_id"]
    labels = full["input_ids"].clone()
    labels[full["input_ids"] == image_id] = -100
    labels[full["input_ids"] != image_id] = pruned["labels"][pruned["input_ids"] != image_id]
    full["labels"] = labels
    return pruned, full, row["kept"], row["tokens"]


def step_rows(folder: Path, quick: bool, Row, interleaved, rounds: int | None = None) -> tuple[list, dict]:
    try:
        import datasets  # noqa: F401  (the collator's extra)
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        print(f"bench: training step row skipped ({exc}; pip install 'pixelprune[train]')", file=sys.stderr)
        return [], {}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from model import PAGE_MAX_PIXELS, build_model, hf_models

    from pixelprune_cli.coding.presets import resolve_preset
    from pixelprune_cli.training import PrunedCollator

    model = build_model(1, 1).train()
    tok = hf_models.tokenizer()
    preset = resolve_preset("qwen3-vl", max_pixels=PAGE_MAX_PIXELS)
    collator = PrunedCollator(tok, preset.to_meta())
    rows, raw = [], {}
    for name in PAGES[:1] if quick else PAGES:
        pruned, full, kept, tokens = _batches(name, folder, tok, collator, preset)
        cpu: dict[str, list[float]] = {}
        wall = interleaved({"pruned": lambda: step(model, pruned), "full": lambda: step(model, full)},
                           rounds or (1 if quick else 2), cpu=cpu)
        t = {k: statistics.median(v) for k, v in wall.items()}
        c = {k: statistics.median(v) for k, v in cpu.items()}
        limit = TARGET * kept / tokens
        cpu_ratio, wall_ratio = c["pruned"] / c["full"], t["pruned"] / t["full"]
        rows += [
            Row(13, f"train step pruned vs full, {name} ({kept}/{tokens} kept), CPU time",
                f"{c['pruned']:.2f} s", f"{c['full']:.2f} s", cpu_ratio, f"<= {limit:.2f}x ({TARGET}x kept)",
                cpu_ratio <= limit, c["pruned"], c["full"]),
            Row(13, "  info: the same, wall time", f"{t['pruned']:.2f} s", f"{t['full']:.2f} s", wall_ratio,
                f"({'<=' if wall_ratio <= limit else '>'} {limit:.2f}x)", None, t["pruned"], t["full"]),
        ]
        raw[name] = {"kept": kept, "tokens": tokens, "seconds": wall, "cpu_seconds": cpu}
    return rows, raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="rounds after the warm-up (default 2; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="the first page only")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import Row, interleaved, render

    from inputs import make_inputs

    rows, _ = step_rows(make_inputs()["folder"], args.quick, Row, interleaved, args.rounds)
    print(render(rows))


if __name__ == "__main__":
    main()
