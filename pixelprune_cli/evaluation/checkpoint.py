"""A local Qwen-VL checkpoint: its family, model, processor, and the preset and backend its processor implies.

Imports torch and transformers (the `hf` extra); `family_of` reads config.json
only, so a wrong folder is refused before they load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from pixelprune_cli.coding.presets import Preset, resolve_preset
from pixelprune_cli.errors import ConfigError, InputError

FAMILIES = {"qwen2_vl": "qwen2-vl", "qwen2_5_vl": "qwen2.5-vl", "qwen3_vl": "qwen3-vl"}
NAMES = "Qwen2-VL, Qwen2.5-VL or Qwen3-VL"


def family_of(path: str) -> str:
    """The checkpoint's model_type; InputError (one line) for a folder that is not a Qwen-VL checkpoint."""
    config = os.path.join(path, "config.json")
    if not os.path.isdir(path):
        raise InputError(f"{path}: no such folder (--model takes a local checkpoint folder)")
    try:
        with open(config, encoding="utf-8") as handle:
            model_type = json.load(handle).get("model_type")
    except FileNotFoundError:
        raise InputError(f"{path}: not a checkpoint folder (no config.json)") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"{config}: unreadable ({exc})") from None
    if model_type not in FAMILIES:
        raise InputError(f"{path}: a {model_type or 'unknown'} checkpoint; pixelprune eval runs {NAMES} checkpoints")
    return model_type


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available here (no GPU, or torch built without CUDA); "
                          "use --device cpu or auto")
    return device


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


@dataclass
class Checkpoint:
    path: str
    family: str
    model: Any
    processor: Any
    preset: Preset
    backend: str  # the processor backend pixelprune codes with: 'pil' or 'torchvision'
    device: str


def processor_preset(processor, family: str, min_pixels: int | None, max_pixels: int | None) -> Preset:
    """The preset the checkpoint's image processor describes (its pixel bounds unless overridden)."""
    image_processor = processor.image_processor
    size = getattr(image_processor, "size", None) or {}
    get = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
    base = resolve_preset(FAMILIES[family])
    low = get("shortest_edge") or get("min_pixels") or getattr(image_processor, "min_pixels", None) or base.min_pixels
    high = get("longest_edge") or get("max_pixels") or getattr(image_processor, "max_pixels", None) or base.max_pixels
    values = dict(patch_size=image_processor.patch_size, merge_size=image_processor.merge_size,
                  temporal_patch_size=image_processor.temporal_patch_size,
                  min_pixels=min_pixels or low, max_pixels=max_pixels or high,
                  image_mean=tuple(float(v) for v in image_processor.image_mean),
                  image_std=tuple(float(v) for v in image_processor.image_std))
    if values["min_pixels"] > values["max_pixels"]:
        raise ConfigError(f"min-pixels {values['min_pixels']:,} is over max-pixels {values['max_pixels']:,}")
    return Preset(name=base.name, **values)


def load_checkpoint(path: str, device: str = "auto", dtype: str = "auto", min_pixels: int | None = None,
                    max_pixels: int | None = None) -> Checkpoint:
    """Model and processor through AutoModelForImageTextToText and AutoProcessor; the bounds set on both."""
    family = family_of(path)
    device = pick_device(device)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from pixelprune_cli.coding.backends import processor_backend
    from pixelprune_cli.hf import enable

    processor = AutoProcessor.from_pretrained(path)
    backend = processor_backend(processor)
    if backend is None:
        raise InputError(f"{path}: its image processor {type(processor.image_processor).__name__} is neither "
                         "transformers' Pillow nor its torchvision Qwen-VL processor")
    preset = processor_preset(processor, family, min_pixels, max_pixels)
    processor.image_processor.size = {"shortest_edge": preset.min_pixels, "longest_edge": preset.max_pixels}
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=pick_dtype(dtype, device)).to(device).eval()
    enable(model)  # the processor's own inputs still take the unmodified path (hf.enable)
    return Checkpoint(path, family, model, processor, preset, backend, device)
