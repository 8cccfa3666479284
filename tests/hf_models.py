"""Tiny random Qwen-VL models, an offline tokenizer, and the masked-attention oracle for tests/test_hf.py.

No weights, no hub: each family's model is built from its config classes with
a few layers and small widths but the real patch, merge, temporal and window
sizes; the tokenizer is a `tokenizers` word-level model with the special
tokens at the ids the configs name.

The oracle is the unmodified model on the full image with the dropped tokens
masked out of every attention: in the ViT through an attention function
registered with transformers (each image's patches attend to that image's
kept patches, within their window on Qwen2.5-VL's window layers), in the LLM
by a 0 in the 2-D attention mask at every dropped image token, with the
full sequence's `get_rope_index` ids as position_ids.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
from transformers import (
    AttentionInterface,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)
from transformers.models.qwen3_vl.modeling_qwen3_vl import eager_attention_forward
from transformers.vision_utils import get_vision_window_index

from pixelprune_cli.coding.presets import resolve_preset

SPECIAL = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "<|vision_start|>": 3,
           "<|vision_end|>": 4, "<|image_pad|>": 5, "<|video_pad|>": 6}
WORDS = ("user assistant system describe the page what does this say read table form chart "
         "screen and of to in a . , ? !").split()
TOKEN_IDS = dict(image_token_id=5, video_token_id=6, vision_start_token_id=3, vision_end_token_id=4)
ROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, initializer_range=0.1, eos_token_id=2, pad_token_id=0, bos_token_id=1)


# Renders messages as Qwen's template does where it matters: each image item becomes the placeholder.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }} "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)


def tokenizer() -> PreTrainedTokenizerFast:
    vocab = dict(SPECIAL)
    vocab["[UNK]"] = len(vocab)
    for word in WORDS:
        vocab[word] = len(vocab)
    model = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    model.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    return PreTrainedTokenizerFast(tokenizer_object=model, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="[UNK]", chat_template=CHAT_TEMPLATE)


def vocab_size() -> int:
    return len(SPECIAL) + 1 + len(WORDS)


def tiny_config(family: str):
    """A few layers and small widths; the real patch/merge/temporal/window sizes of the family."""
    text = dict(TEXT, vocab_size=vocab_size())
    if family == "qwen3_vl":
        text.update(head_dim=16, rope_parameters=dict(ROPE, mrope_interleaved=True))
        vision = dict(depth=3, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=64, patch_size=16,
                      spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
                      deepstack_visual_indexes=[0, 1], initializer_range=0.1)
        return Qwen3VLConfig(vision_config=vision, text_config=text, **TOKEN_IDS)
    text.update(rope_parameters=dict(ROPE))
    if family == "qwen2_5_vl":
        vision = dict(depth=3, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=64, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[1],
                      initializer_range=0.1)
        return Qwen2_5_VLConfig(vision_config=vision, text_config=text, **TOKEN_IDS)
    vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, initializer_range=0.1)
    return Qwen2VLConfig(vision_config=vision, text_config=text, **TOKEN_IDS)


MODEL_CLASSES = {"qwen2_vl": Qwen2VLForConditionalGeneration, "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
                 "qwen3_vl": Qwen3VLForConditionalGeneration}
PRESET_NAMES = {"qwen2_vl": "qwen2-vl", "qwen2_5_vl": "qwen2.5-vl", "qwen3_vl": "qwen3-vl"}


def tiny_model(family: str, seed: int = 0):
    config = tiny_config(family)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    return MODEL_CLASSES[family](config).eval()


def small_preset(family: str, max_pixels: int):
    return resolve_preset(PRESET_NAMES[family], max_pixels=max_pixels)


def image_processor(preset) -> Qwen2VLImageProcessorPil:
    return Qwen2VLImageProcessorPil(
        patch_size=preset.patch_size, merge_size=preset.merge_size, temporal_patch_size=preset.temporal_patch_size,
        size={"shortest_edge": preset.min_pixels, "longest_edge": preset.max_pixels},
        image_mean=list(preset.image_mean), image_std=list(preset.image_std))


def full_inputs(tok, preset, texts: list[str], images: list) -> dict:
    """What the model's processor gives for these prompts and images: every token of every image."""
    pixels = image_processor(preset)(images=images, return_tensors="pt")
    counts = (pixels["image_grid_thw"].prod(-1) // preset.merge_size**2).tolist()
    expanded, k = [], 0
    for text in texts:
        parts = text.split("<|image_pad|>")
        out = parts[0]
        for part in parts[1:]:
            out += "<|image_pad|>" * counts[k] + part
            k += 1
        expanded.append(out)
    encoded = tok(expanded, padding=True, padding_side="left", return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "mm_token_type_ids": (encoded["input_ids"] == TOKEN_IDS["image_token_id"]).int(),
            "pixel_values": pixels["pixel_values"], "image_grid_thw": pixels["image_grid_thw"]}


# --- the masked oracle -------------------------------------------------------------------------

_MASKS: dict = {}  # attention module -> (n, n) bool, True where a query may attend a key


def _masked_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    allowed = _MASKS[module]
    additive = torch.zeros(allowed.shape, dtype=query.dtype)
    additive.masked_fill_(~allowed, torch.finfo(query.dtype).min)
    return eager_attention_forward(module, query, key, value, additive[None, None], scaling, dropout)


AttentionInterface.register("pixelprune_masked_oracle", _masked_attention)


@contextlib.contextmanager
def _vision_masks(model, masks_by_block):
    visual = model.model.visual
    before = visual.config._attn_implementation
    visual.config._attn_implementation = "pixelprune_masked_oracle"
    try:
        for block, mask in zip(visual.blocks, masks_by_block):
            _MASKS[block.attn] = mask
        yield
    finally:
        visual.config._attn_implementation = before
        _MASKS.clear()


@dataclass
class Oracle:
    """The masked full-image run: its inputs, logits, and where the kept and text tokens are."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor  # 0 at padding and at dropped image tokens
    position_ids: torch.Tensor  # the full sequence's get_rope_index ids
    image_features: object  # the masked ViT's output, as get_image_features returns it
    logits: torch.Tensor


def kept_token_mask(grid_thw: torch.Tensor, rows: list[dict], merge: int) -> torch.Tensor:
    masks = []
    for grid, row in zip(grid_thw.tolist(), rows):
        mask = torch.zeros(grid[1] * grid[2] // merge**2, dtype=torch.bool)
        mask[torch.as_tensor(row["kept_index"], dtype=torch.long)] = True
        masks.append(mask)
    return torch.cat(masks)


def vision_masks(model, family: str, grid_thw: torch.Tensor, kept: torch.Tensor) -> list[torch.Tensor]:
    """Per ViT block, which patch may attend which: same image, key kept (same window on window layers)."""
    visual = model.model.visual
    merge = visual.spatial_merge_size
    unit = merge * merge
    image_of_token = torch.repeat_interleave(torch.arange(len(grid_thw)), grid_thw.prod(-1) // unit)
    key_kept = kept.repeat_interleave(unit)
    image_of_patch = image_of_token.repeat_interleave(unit)
    full = (image_of_patch[:, None] == image_of_patch[None, :]) & key_kept[None, :]
    if family != "qwen2_5_vl":
        return [full] * len(visual.blocks)
    index, bounds = get_vision_window_index(grid_thw, merge, visual.window_size, visual.patch_size)
    window_of_slot = torch.searchsorted(bounds.long() // unit, torch.arange(len(index)), right=True) - 1
    window_of_token = torch.empty_like(window_of_slot)
    window_of_token[index] = window_of_slot
    window_of_patch = window_of_token.repeat_interleave(unit)
    windowed = full & (window_of_patch[:, None] == window_of_patch[None, :])
    return [full if i in visual.fullatt_block_indexes else windowed for i in range(len(visual.blocks))]


def masked_forward(model, family: str, full: dict, rows: list[dict]) -> Oracle:
    """The unmodified model on the full images with the dropped tokens masked out of every attention.

    With autograd, for gradients; `masked_oracle` is the same without it.
    """
    grid = full["image_grid_thw"]
    kept = kept_token_mask(grid, rows, model.model.visual.spatial_merge_size)
    n_patches = int(grid.prod(-1).sum())
    whole = torch.tensor([0, n_patches], dtype=torch.int32)  # one attention segment; the masks split it
    metadata = {"image_cu_seqlens": whole}
    if family == "qwen2_5_vl":  # keep row order (identity window order); the masks apply the windows
        metadata.update(image_window_index=torch.arange(n_patches // 4), image_cu_window_seqlens=whole)
    with _vision_masks(model, vision_masks(model, family, grid, kept)):
        features = model.model.get_image_features(full["pixel_values"], grid, return_dict=True, **metadata)
    position_ids, _ = model.model.get_rope_index(full["input_ids"], full["mm_token_type_ids"], grid,
                                                 attention_mask=full["attention_mask"])
    attention_mask = full["attention_mask"].clone()
    image_slots = full["input_ids"] == TOKEN_IDS["image_token_id"]
    attention_mask[image_slots] = kept.to(attention_mask.dtype)
    logits = model(input_ids=full["input_ids"], attention_mask=attention_mask, position_ids=position_ids,
                   mm_encoder_outputs={"image": features}).logits
    return Oracle(full["input_ids"], attention_mask, position_ids, features, logits)


masked_oracle = torch.no_grad()(masked_forward)


@torch.no_grad()
def oracle_generate(model, oracle: Oracle, new_tokens: int) -> torch.Tensor:
    out = model.generate(input_ids=oracle.input_ids, attention_mask=oracle.attention_mask,
                         position_ids=oracle.position_ids, mm_encoder_outputs={"image": oracle.image_features},
                         max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    return out[:, oracle.input_ids.shape[1]:]


def compare_at_kept(oracle: Oracle, pruned_logits: torch.Tensor, pruned_mask: torch.Tensor) -> float:
    """Max abs logit difference over every kept image token and text token of every prompt."""
    worst = 0.0
    for b in range(pruned_logits.shape[0]):
        ours = pruned_logits[b, pruned_mask[b].bool()]
        theirs = oracle.logits[b, oracle.attention_mask[b].bool()]
        assert ours.shape == theirs.shape
        worst = max(worst, float((ours - theirs).abs().max()))
    return worst




def multi_image_cache(folder, preset, conversations, output: str) -> str:
    """`compress --keep-columns messages` of a TRL-style table (an `images` list column, a `messages` column)
    holding one row per (image names, messages) conversation; the output's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pixelprune_cli import api
    from pixelprune_cli.coding.pipeline import CodingConfig
    from pixelprune_cli.inputs.pieces import SourceOptions

    from conftest import SAMPLES

    images = [[{"bytes": (SAMPLES / name).read_bytes(), "path": name} for name in names] for names, _ in conversations]
    table = folder / "trajectories.parquet"
    pq.write_table(pa.table({"images": images, "messages": [messages for _, messages in conversations]}), table)
    out = str(folder / output) if not output.endswith("/") else f"{folder}/{output}"
    api.compress([str(table)], out, CodingConfig(preset=preset), SourceOptions(keep_columns=("messages",)),
                 shard_size=1 if output.endswith("/") else None)
    return out
