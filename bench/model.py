"""`make bench-model`: vision encoder + LLM prefill on pruned vs full images, side by side.

A random-initialised Qwen3-VL whose layers have Qwen3-VL-2B's shapes (ViT:
width 1024, 16 heads, MLP 4096, patch 16, merge 2, 2304 position embeddings,
deepstack; LLM: width 2048, 16 heads of 128, 8 KV heads, MLP 6144) but fewer
of them, because 24 + 28 full-width layers on a 2-core CPU take minutes a
page: by default 1 ViT block and 1 LLM layer. Each layer's work scales with
the tokens in the same way at any depth, so the time ratio carries over; the
FLOPs columns count the real depth (24 ViT blocks, 28 LLM layers).

For each image: `model(**inputs, logits_to_keep=1)` on the enabled model with
prepare_inputs' pruned inputs, and on the processor's full inputs, in
alternating rounds (medians of wall and of process CPU time), sdpa
attention, float32, torch's own threads.
Inputs: samples/ at the qwen3-vl preset, and one bench page of each kind
(bench/inputs.py) with max_pixels capped so a page is at most about 1,024
tokens (the uncapped 2480x3508 scan is 8,500 tokens; its full-attention ViT
alone would take minutes here).

    .venv/bin/python bench/model.py [--vit-depth N] [--llm-layers N] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))  # the offline tokenizer and full-input builder the tests use

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration  # noqa: E402

from pixelprune_cli import prune_image  # noqa: E402
from pixelprune_cli.coding.presets import resolve_preset  # noqa: E402
from pixelprune_cli.hf import enable, prepare_inputs  # noqa: E402

import hf_models  # noqa: E402
from inputs import FOLDER_SPECS, WORK, make_inputs  # noqa: E402

VIT = dict(hidden_size=1024, num_heads=16, intermediate_size=4096, out_hidden_size=2048, patch_size=16,
           spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304)
LLM = dict(hidden_size=2048, num_attention_heads=16, num_key_value_heads=8, head_dim=128, intermediate_size=6144,
           rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20],
                            "mrope_interleaved": True})
REAL_VIT_DEPTH, REAL_LLM_LAYERS, REAL_DEEPSTACK = 24, 28, 3
PROMPT = "<|im_start|>user <|vision_start|><|image_pad|><|vision_end|> describe the page<|im_end|><|im_start|>assistant"
BENCH_PAGES = ["page_1700x2200_a", "scan_2480x3508_grey", "screen_1920x1080_a", "screen_2560x1440_a",
               "phone_1170x2532_a"]
PAGE_MAX_PIXELS = 1024 * 32 * 32


def build_model(vit_depth: int, llm_layers: int):
    deepstack = list(range(min(REAL_DEEPSTACK, vit_depth)))
    config = Qwen3VLConfig(
        vision_config=dict(VIT, depth=vit_depth, deepstack_visual_indexes=deepstack),
        text_config=dict(LLM, num_hidden_layers=llm_layers, vocab_size=hf_models.vocab_size()),
        **hf_models.TOKEN_IDS)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return enable(Qwen3VLForConditionalGeneration(config).eval())


def vit_flops(segments: list[int], depth: int, deepstack: int) -> float:
    """Multiply-adds x2 of the ViT on images of these patch counts (linear layers, attention, mergers)."""
    d, ff, out, unit = VIT["hidden_size"], VIT["intermediate_size"], VIT["out_hidden_size"], 4
    n = sum(segments)
    patch_in = 3 * VIT["temporal_patch_size"] * VIT["patch_size"] ** 2
    per_block = 2 * n * (4 * d * d + 2 * d * ff) + 4 * d * sum(s * s for s in segments)
    merger = 2 * (n // unit) * (unit * d * unit * d + unit * d * out)
    return 2 * n * patch_in * d + depth * per_block + (1 + deepstack) * merger


def llm_flops(length: int, layers: int) -> float:
    """Prefill of `length` tokens (projections, causal attention, MLP), without the LM head."""
    d, heads, kv, hd, ff = (LLM[k] for k in ("hidden_size", "num_attention_heads", "num_key_value_heads",
                                               "head_dim", "intermediate_size"))
    projections = 2 * length * (2 * d * heads * hd + 2 * d * kv * hd + 3 * d * ff)
    attention = 4 * heads * hd * length * (length + 1) / 2
    return layers * (projections + attention)


def timed(fns: dict, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and process-CPU seconds of each call, alternating the order every round.

    The CPU time is less disturbed by other processes on a shared machine.
    """
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % 2:] + names[:r % 2]:
            cpu_start, start = time.process_time(), time.perf_counter()
            fns[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - cpu_start)
    return ({name: statistics.median(v) for name, v in wall.items()},
            {name: statistics.median(v) for name, v in cpu.items()})


def images(quick: bool) -> list[tuple[str, Path, object]]:
    samples = sorted(p for p in (ROOT / "samples").iterdir() if p.suffix in (".png", ".jpg"))
    chosen = [(p.name, p, resolve_preset("qwen3-vl")) for p in samples]
    folder = make_inputs()["folder"]
    capped = resolve_preset("qwen3-vl", max_pixels=PAGE_MAX_PIXELS)
    chosen += [(f"{name}.png", folder / f"{name}.png", capped) for name in BENCH_PAGES]
    assert all(name in {n for n, _ in FOLDER_SPECS} for name in BENCH_PAGES)
    return chosen[::4] if quick else chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vit-depth", type=int, default=1)
    parser.add_argument("--llm-layers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="every fourth image only")
    args = parser.parse_args()

    model = build_model(args.vit_depth, args.llm_layers)
    tokenizer = hf_models.tokenizer()
    print(f"Qwen3-VL-2B layer shapes, {args.vit_depth} ViT blocks + {args.llm_layers} LLM layers "
          f"(FLOPs at the real {REAL_VIT_DEPTH} + {REAL_LLM_LAYERS}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, sdpa, float32; medians of {args.rounds} alternating rounds")
    header = (f"{'image':30s} {'tokens':>6s} {'kept':>6s} {'kept %':>7s} {'full s':>8s} {'pruned s':>9s} "
              f"{'time ratio':>10s} {'CPU ratio':>9s} {'FLOPs ratio':>11s}")
    print(header)
    results = []
    warmed = False
    for name, path, preset in images(args.quick):
        row = prune_image(path, preset=preset)
        with Image.open(path) as image:
            image.load()
            full = hf_models.full_inputs(tokenizer, preset, [PROMPT], [image])
        pruned = prepare_inputs(tokenizer, PROMPT, [row], preset.to_meta())

        def run(inputs):
            with torch.inference_mode():
                model(**inputs, logits_to_keep=1)

        if not warmed:  # first calls pay one-off allocation and dispatch costs
            run(full), run(pruned)
            warmed = True
        seconds, cpu = timed({"full": lambda: run(full), "pruned": lambda: run(pruned)}, args.rounds)
        flops = {}
        for label, inputs, tokens in (("full", full, row["tokens"]), ("pruned", pruned, row["kept"])):
            flops[label] = (vit_flops([tokens * 4], REAL_VIT_DEPTH, REAL_DEEPSTACK)
                            + llm_flops(inputs["input_ids"].shape[1], REAL_LLM_LAYERS))
        result = dict(image=name, tokens=row["tokens"], kept=row["kept"], full_s=seconds["full"],
                      pruned_s=seconds["pruned"], time_ratio=seconds["pruned"] / seconds["full"],
                      cpu_ratio=cpu["pruned"] / cpu["full"],
                      flops_ratio=flops["pruned"] / flops["full"], full_tflops=flops["full"] / 1e12)
        results.append(result)
        print(f"{name:30s} {row['tokens']:6d} {row['kept']:6d} {100 * row['kept'] / row['tokens']:6.1f}% "
              f"{seconds['full']:8.2f} {seconds['pruned']:9.2f} {result['time_ratio']:10.2f} "
              f"{result['cpu_ratio']:9.2f} {result['flops_ratio']:11.2f}", flush=True)
    total_full = sum(r["full_s"] for r in results)
    total_pruned = sum(r["pruned_s"] for r in results)
    print(f"{'all images':30s} {sum(r['tokens'] for r in results):6d} {sum(r['kept'] for r in results):6d} "
          f"{100 * sum(r['kept'] for r in results) / sum(r['tokens'] for r in results):6.1f}% "
          f"{total_full:8.2f} {total_pruned:9.2f} {total_pruned / total_full:10.2f}")
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "model.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
