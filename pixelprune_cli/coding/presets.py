"""Model presets: the image-processor settings each supported VLM uses.

A preset fixes everything that decides the pixels a model sees (patch and merge
size, the smart_resize pixel bounds, the normalisation constants), so two runs
with the same preset produce the same tokens.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from pixelprune_cli.errors import ConfigError

# OpenAI CLIP statistics, used by Qwen2-VL and Qwen2.5-VL.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preset:
    """Processor settings of one model family (values as in its preprocessor config)."""

    name: str
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    min_pixels: int
    max_pixels: int
    image_mean: tuple[float, ...]  # one per RGB channel
    image_std: tuple[float, ...]

    @property
    def token_size(self) -> int:
        """Side in pixels of one merged token (the unit the coder works on)."""
        return self.patch_size * self.merge_size

    @property
    def token_bytes(self) -> int:
        """uint8 values stored per kept token: merge^2 patches of 3 x patch x patch."""
        return self.merge_size**2 * 3 * self.patch_size**2

    def to_meta(self) -> dict:
        return {
            "preset": self.name,
            "patch_size": self.patch_size,
            "merge_size": self.merge_size,
            "temporal_patch_size": self.temporal_patch_size,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
        }


PRESETS: dict[str, Preset] = {
    "qwen2-vl": Preset("qwen2-vl", 14, 2, 2, 3136, 12845056, CLIP_MEAN, CLIP_STD),
    "qwen2.5-vl": Preset("qwen2.5-vl", 14, 2, 2, 3136, 12845056, CLIP_MEAN, CLIP_STD),
    "qwen3-vl": Preset("qwen3-vl", 16, 2, 2, 65536, 16777216, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
DEFAULT_PRESET = "qwen3-vl"
# The coder's predictors and per-token error measures (coder.py implements them);
# kept in this light module so that the CLI lists them without importing Numba.
METHODS = ("pred_2d", "raster", "serpentine")
METRICS = ("max", "mae", "rmse")
# The processors whose pixels an output can match (backends.py implements them).
BACKENDS = ("pil", "torchvision", "qwen-vl-utils")
DEFAULT_BACKEND = "pil"  # outputs without a `backend` key were made with it


def preset_from_meta(meta: dict) -> Preset:
    """The Preset an output's `pixelprune` metadata describes; ConfigError (one line) for values no image can have.

    Sizes must be whole numbers of at least 1 (a patch size of 0 would divide
    by zero, 16.5 would silently become 16), the normalisation three finite
    numbers per statistic with no zero deviation.
    """
    def whole(key: str, default: int | None = None) -> int:
        value = meta.get(key, default)
        number = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
        if not (math.isfinite(number) and number == int(number) >= 1):
            raise ConfigError(f"preset {key} must be a whole number of at least 1, got {value!r}")
        return int(number)

    def three(key: str) -> tuple[float, ...]:
        value = meta.get(key)
        try:
            values = tuple(float(v) for v in value)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            values = ()
        if len(values) != 3 or not all(map(math.isfinite, values)) or (key == "image_std" and 0 in values):
            raise ConfigError(f"preset {key} must be three finite numbers (one per RGB channel)"
                              f"{', none of them 0' if key == 'image_std' else ''}, got {value!r}")
        return values

    preset = Preset(name=str(meta.get("preset", "custom")), patch_size=whole("patch_size"),
                    merge_size=whole("merge_size"), temporal_patch_size=whole("temporal_patch_size", 2),
                    min_pixels=whole("min_pixels"), max_pixels=whole("max_pixels"),
                    image_mean=three("image_mean"), image_std=three("image_std"))
    if preset.min_pixels > preset.max_pixels:
        raise ConfigError(f"preset min_pixels {preset.min_pixels:,} is over its max_pixels {preset.max_pixels:,}")
    return preset


def resolve_preset(preset: str | dict | Preset = DEFAULT_PRESET, **overrides) -> Preset:
    """Return a Preset from a name, an output file's `pixelprune` metadata dict, or a Preset.

    Keyword overrides (patch_size, merge_size, min_pixels, max_pixels) that are
    None are ignored, so CLI options can be passed straight through.
    """
    if isinstance(preset, Preset):
        base = preset
    elif isinstance(preset, dict):
        base = preset_from_meta(preset)
    else:
        try:
            base = PRESETS[preset]
        except KeyError:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}") from None
    changes: dict[str, Any] = {k: int(v) for k, v in overrides.items() if v is not None}
    for key, value in changes.items():
        if value < 1:
            raise ConfigError(f"{key.replace('_', '-')} must be at least 1, got {value}")
    if changes.get("min_pixels", base.min_pixels) > changes.get("max_pixels", base.max_pixels):
        raise ConfigError("min-pixels must not exceed max-pixels")
    return dataclasses.replace(base, **changes) if changes else base
