"""Feed pruned rows to Qwen2-VL, Qwen2.5-VL and Qwen3-VL in transformers.

`prepare_inputs` turns prompts and output rows into what `model(**inputs)` and
`model.generate(**inputs)` take; `enable(model)` lets an unmodified model read
them. Kept tokens keep the place they have in the full image everywhere:

- ViT: rotary (h, w) positions, Qwen3-VL's interpolated absolute position
  embeddings (and so its deepstack features) are the full grid's, taken at the
  kept patches; each image attends over its kept patches only; Qwen2.5-VL's
  window attention uses the full image's windows restricted to kept patches.
  All of this goes through transformers' precomputed vision metadata
  (`vision_utils`: position_ids, cu_seqlens, interp_indices/interp_weights,
  window_index/cu_window_seqlens).
- LLM: `position_ids` are the MRoPE ids `get_rope_index` gives the full
  sequence, taken at the kept tokens; text after an image continues as after
  the full image, and generation continues from there.

What `enable` changes, on the model instance only: the base model's
`get_image_features` gains an `image_kept_mask` argument (`forward` routes
pixels through it, so this is the narrowest point where the ViT can be told
which patches it holds), and `generate` encodes pruned images through it
before handing them on as `mm_encoder_outputs`. Without `image_kept_mask`
both call the originals.
Needs torch and transformers (`pip install 'pixelprune[hf]'`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils.generic import accepts_precomputed_kwargs
from transformers.vision_utils import (
    get_vision_interpolation_indices_and_weights,
    get_vision_position_ids,
    get_vision_window_index,
)

from pixelprune_cli.coding.backends import check_processor_fits, pillow_runtime_warning, rows_backend
from pixelprune_cli.coding.presets import resolve_preset
from pixelprune_cli.errors import BadRow, ConfigError
from pixelprune_cli.model import checked_model_inputs, checked_model_row, image_rows

IMAGE_TOKEN = "<|image_pad|>"
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


def prepare_inputs(processor, text, rows, meta=None) -> BatchFeature:
    """Prompts and pruned rows as model inputs: each image placeholder expanded to its kept tokens.

    processor: the model's processor or its tokenizer. text: one prompt or a
    list (a batch, left-padded); each holds `<|image_pad|>` once per image, as
    `apply_chat_template` writes it. rows: the images' output rows, in order
    across the batch; a multi-image row stands for its images, in order. meta: the output's `pixelprune` metadata or a preset name
    (default qwen3-vl). Returns input_ids, attention_mask, mm_token_type_ids,
    position_ids (3, batch, length), pixel_values (float32, the kept patches),
    image_grid_thw (the full grids) and image_kept_mask (bool, one per merged
    token of every image, True where kept); an `enable`d model reads them.
    """
    preset = resolve_preset(meta if meta is not None else "qwen3-vl")
    tokenizer = getattr(processor, "tokenizer", processor)
    _check_processor_matches(processor, preset)
    normalise_as = check_processor_fits(rows_backend(meta), processor)
    if (message := pillow_runtime_warning(meta)) is not None:
        warnings.warn(message, stacklevel=2)
    texts = [text] if isinstance(text, str) else list(text)
    rows = [image for row in rows for image in image_rows(row)]  # a multi-image row: its images, in order
    image_token = getattr(tokenizer, "image_token", None) or IMAGE_TOKEN
    image_token_id = tokenizer.convert_tokens_to_ids(image_token)
    placeholders = [t.count(image_token) for t in texts]
    if sum(placeholders) != len(rows):
        raise ConfigError(f"the prompts hold {sum(placeholders)} image placeholders ({image_token}) "
                         f"but {len(rows)} rows were given")

    for k, row in enumerate(rows):  # before any is used: a bad row would silently misplace tokens
        checked_model_row(row, preset, f"image {k} of {len(rows)} ({row.get('id', '')!r})")
    images = [checked_model_inputs(row, preset, normalise_as) for row in rows]
    kept = [len(row["kept_index"]) for row in rows]
    expanded, next_image = [], 0
    for prompt, count in zip(texts, placeholders):
        parts = prompt.split(image_token)
        pieces = [parts[0]]
        for i in range(count):
            pieces += [image_token * kept[next_image + i], parts[i + 1]]
        expanded.append("".join(pieces))
        next_image += count
    encoded = tokenizer(expanded, padding=True, padding_side="left", return_tensors="pt")
    input_ids, attention_mask = encoded["input_ids"], encoded["attention_mask"]

    grids = np.concatenate([image["image_grid_thw"] for image in images]) if images else np.zeros((0, 3), np.int64)
    kept_mask = np.zeros(int(sum(int(g[1] * g[2]) for g in grids) // preset.merge_size**2), dtype=bool)
    offset = 0
    for grid, row in zip(grids, rows):
        kept_mask[offset + np.asarray(row["kept_index"], dtype=np.int64)] = True
        offset += int(grid[1] * grid[2]) // preset.merge_size**2
    position_ids = rope_positions(input_ids.numpy(), attention_mask.numpy(), image_token_id, rows, grids,
                                  preset.merge_size)
    data = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "mm_token_type_ids": (input_ids == image_token_id).to(torch.int32),
        "position_ids": torch.from_numpy(position_ids),
    }
    if images:
        data["pixel_values"] = torch.from_numpy(np.concatenate([image["pixel_values"] for image in images]))
        data["image_grid_thw"] = torch.from_numpy(grids)
        data["image_kept_mask"] = torch.from_numpy(kept_mask)
    return BatchFeature(data)


def _check_processor_matches(processor, preset) -> None:
    image_processor = getattr(processor, "image_processor", None)
    for name in ("patch_size", "merge_size", "temporal_patch_size"):
        value = getattr(image_processor, name, None)
        if value is not None and value != getattr(preset, name):
            raise ConfigError(f"the processor's {name} is {value} but the rows were coded for preset "
                             f"{preset.name!r} ({name} {getattr(preset, name)}); pass that output's metadata as meta")


def rope_positions(input_ids: np.ndarray, attention_mask: np.ndarray, image_token_id: int, rows, grids,
                   merge_size: int) -> np.ndarray:
    """(3, batch, length) MRoPE (t, h, w) ids: the full sequence's, taken at the kept tokens.

    As the model's `get_rope_index` counts: text tokens advance every axis by
    one; an image starting at position s gives its token at merged (row, col)
    the ids (s, s + row, s + col), and the text after it starts at
    s + max(rows, cols) of the full grid. Padding gets 0.
    """
    positions = np.zeros((3,) + input_ids.shape, dtype=np.int64)
    image = 0
    for b in range(input_ids.shape[0]):
        columns = np.flatnonzero(attention_mask[b])
        ids = input_ids[b, columns]
        current, i = 0, 0
        out = np.empty((3, len(ids)), dtype=np.int64)
        while i < len(ids):
            if ids[i] != image_token_id:
                out[:, i] = current
                current, i = current + 1, i + 1
                continue
            kept_index = np.asarray(rows[image]["kept_index"], dtype=np.int64)
            rows_full, cols_full = int(grids[image][1]) // merge_size, int(grids[image][2]) // merge_size
            n = len(kept_index)
            if n == 0 or not np.all(ids[i:i + n] == image_token_id):
                raise BadRow(f"image {image} ({rows[image].get('id', '')!r}) has {n} kept tokens but the "
                                 f"prompt holds a different number of {IMAGE_TOKEN} tokens there")
            out[0, i:i + n] = current
            out[1, i:i + n] = current + kept_index // cols_full
            out[2, i:i + n] = current + kept_index % cols_full
            current += max(rows_full, cols_full)
            i += n
            image += 1
        positions[:, b, columns] = out
    return positions


def enable(model):
    """Let a transformers Qwen2-VL / Qwen2.5-VL / Qwen3-VL model read `prepare_inputs`' output.

    Returns the model itself. Idempotent. Inputs without `image_kept_mask`
    (the processor's own) take the model's original code path unchanged.
    """
    base = model.model if hasattr(model, "model") and hasattr(model.model, "visual") else model
    family = getattr(getattr(base, "config", None), "model_type", None)
    if family not in FAMILIES or not hasattr(base, "visual"):
        raise ConfigError(f"pixelprune.hf.enable supports {', '.join(FAMILIES)} models, not {type(model).__name__}")
    if getattr(base, "_pixelprune_enabled", False):
        return model
    original = base.get_image_features

    def get_image_features(pixel_values, image_grid_thw=None, image_kept_mask=None, **kwargs):
        if image_kept_mask is None:
            return original(pixel_values, image_grid_thw, **kwargs)
        return _encode_kept(base, family, pixel_values, image_grid_thw, image_kept_mask, **kwargs)

    get_image_features.__doc__ = original.__doc__
    base.get_image_features = get_image_features
    if hasattr(model, "generate"):
        model.generate = _generate_with_kept(model, base, model.generate)
    base._pixelprune_enabled = True
    return model


def _generate_with_kept(model, base, original):
    """`generate` that encodes pruned images first and hands them over as `mm_encoder_outputs`.

    generate checks its keyword arguments against `forward`'s signature, which
    does not name image_kept_mask; encoded images are a documented input.
    """

    def generate(*args, image_kept_mask=None, **kwargs):
        if image_kept_mask is not None and kwargs.get("pixel_values") is not None:
            features = base.get_image_features(kwargs.pop("pixel_values"), kwargs.get("image_grid_thw"),
                                               image_kept_mask=image_kept_mask, return_dict=True)
            kwargs["mm_encoder_outputs"] = {**(kwargs.get("mm_encoder_outputs") or {}), "image": features}
        return original(*args, **kwargs)

    generate.__doc__ = original.__doc__
    return generate


@accepts_precomputed_kwargs(modality="image")
def _encode_kept(base, family, pixel_values, grid_thw, kept_mask, **kwargs):
    """Run the ViT on the kept patches with the full grid's metadata; split the output per image."""
    visual = base.visual
    merge = visual.spatial_merge_size
    unit = merge * merge
    keep = kept_mask.to(device=grid_thw.device, dtype=torch.bool)
    kept_counts = [int(part.sum()) for part in torch.split(keep, (grid_thw.prod(-1) // unit).tolist())]
    patch_keep = keep.repeat_interleave(unit)  # a merged token's patches are consecutive rows
    metadata = {
        "position_ids": get_vision_position_ids(grid_thw, merge)[patch_keep],
        "cu_seqlens": F.pad(torch.tensor(kept_counts, device=grid_thw.device).cumsum(0) * unit, (1, 0))
        .to(torch.int32),
    }
    if family == "qwen3_vl":
        indices, weights = get_vision_interpolation_indices_and_weights(
            grid_thw, visual.num_grid_per_side, mode=visual.interpolation_mode,
            align_corners=visual.interpolation_align_corners, spatial_merge_size=merge)
        metadata.update(interp_indices=indices[patch_keep], interp_weights=weights[patch_keep])
    if family == "qwen2_5_vl":
        metadata.update(zip(("window_index", "cu_window_seqlens"),
                            kept_windows(grid_thw, keep, merge, visual.window_size, visual.patch_size)))
    kwargs["return_dict"] = True
    output = visual(pixel_values.type(visual.dtype), grid_thw=grid_thw, **metadata, **kwargs)
    output.pooler_output = torch.split(output.pooler_output, kept_counts)
    if getattr(output, "deepstack_features", None) is not None:
        output.deepstack_features = [torch.split(f, kept_counts) for f in output.deepstack_features]
    return output


def kept_windows(grid_thw, keep, merge: int, window_size: int, patch_size: int):
    """Qwen2.5-VL window attention over kept tokens: the full images' windows, each restricted to its kept tokens.

    Returns window_index (kept tokens, in window order, as indices among the
    kept) and cu_window_seqlens (patch counts; windows left empty are dropped).
    """
    full_index, full_bounds = get_vision_window_index(grid_thw, merge, window_size, patch_size)
    device = keep.device
    full_index = full_index.to(device)
    unit = merge * merge
    bounds = full_bounds.to(device=device, dtype=torch.long) // unit  # window boundaries in merged tokens
    window_of_slot = torch.searchsorted(bounds, torch.arange(len(full_index), device=device), right=True) - 1
    kept_rank = keep.long().cumsum(0) - 1  # a kept token's index among the kept
    slot_kept = keep[full_index]
    window_index = kept_rank[full_index[slot_kept]]
    per_window = torch.bincount(window_of_slot[slot_kept], minlength=len(bounds) - 1)
    cu = F.pad(per_window.cumsum(0) * unit, (1, 0))
    return window_index, torch.unique_consecutive(cu).to(torch.int32)
