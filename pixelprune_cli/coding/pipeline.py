"""The per-image function: one image in, one coded row (or one failure) out.

Everything that decides an image's output lives here and is pure, so the CLI,
worker threads and Ray all call the same code and produce the same rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from pixelprune_cli import __version__
from pixelprune_cli.coding import backends
from pixelprune_cli.coding.budget import BudgetResult, code_with_budget
from pixelprune_cli.coding.coder import METHODS, METRICS, code_refs
from pixelprune_cli.coding.preprocess import (
    DECODE_MEMORY,
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    decoded_bytes,
    open_image,
)
from pixelprune_cli.coding.presets import PRESETS, Preset, resolve_preset
from pixelprune_cli.coding.tokens import gather_tokens, layout, scatter_tokens
from pixelprune_cli.errors import ConfigError, ImageFailure, StoreUnavailable, one_line, option
from pixelprune_cli.records import CodedImage, FailedImage


@dataclass(frozen=True)
class CodingConfig:
    """What decides the output of an image: model preset and coder settings."""

    preset: Preset = field(default_factory=resolve_preset)  # or a preset's name, turned into it
    method: str = "pred_2d"
    metric: str = "max"
    tau: float = 0.0
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES  # bytes read per image at most (files and cells)
    budget: int | None = None  # keep at most this many tokens: search tau in [0, max_tau]
    max_tau: float = 0.1
    # The processor the pixels match (backends.BACKENDS). For qwen-vl-utils, fetch_image's own pixel
    # bounds come from the preset: backends.preset_for("qwen-vl-utils", name) gives its defaults.
    backend: str = backends.DEFAULT_BACKEND

    def __post_init__(self):
        if isinstance(self.preset, str):  # CodingConfig(preset="qwen3-vl"): a name stands for its preset
            object.__setattr__(self, "preset", resolve_preset(self.preset))
        elif not isinstance(self.preset, Preset):
            raise ConfigError(f"preset must be a preset name ({', '.join(PRESETS)}) or a Preset, "
                              f"got {type(self.preset).__name__}")
        backends.check_backend(self.backend)
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.metric not in METRICS:
            raise ConfigError(f"unknown metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        # Every per-token error is at most 1 (pixel differences in [0,1] units): a larger tau means nothing.
        if not (0.0 <= self.tau <= 1.0):
            raise ConfigError(f"tau must be between 0 and 1 (every per-token error is at most 1), got {self.tau}")
        if self.budget is not None:
            if self.budget < 1:
                raise ConfigError(f"budget must be at least 1 token, got {self.budget}")
            if self.tau != 0.0:
                raise ConfigError(f"{option('budget', self.budget)} searches tau itself; bound it with "
                                  f"{option('max_tau', self.max_tau)} instead of {option('tau', self.tau)}")
            if not (0.0 <= self.max_tau <= 1.0):
                raise ConfigError(f"max-tau must be between 0 and 1, got {self.max_tau}")
        if self.max_image_pixels < 1 or self.max_image_bytes < 1:
            raise ConfigError(f"{option('max_image_pixels', self.max_image_pixels)} and "
                              f"{option('max_image_bytes', self.max_image_bytes)}: each must be at least 1")
        # smart_resize never gives less than one merged token, nor less than min_pixels: both must
        # stay within the image sizes that may be held, or a small image would be blown up past them.
        preset, side = self.preset, self.preset.token_size
        largest = max(self.max_image_pixels, DEFAULT_MAX_IMAGE_PIXELS)
        if side * side > min(preset.max_pixels, largest):
            raise ConfigError(f"a merged token of {side}x{side} px (patch-size {preset.patch_size} x merge-size "
                              f"{preset.merge_size}) is larger than max-pixels {preset.max_pixels:,} or "
                              f"the largest image allowed ({largest:,} px)")
        if preset.min_pixels > largest:
            raise ConfigError(f"min-pixels {preset.min_pixels:,} is over the largest image allowed ({largest:,} px, "
                              "--max-image-pixels): every image would be enlarged past it")

    def to_meta(self) -> dict:
        """The `pixelprune` schema metadata: everything needed to read or redo the output."""
        meta = {
            "version": __version__,
            **self.preset.to_meta(),
            "method": self.method,
            "metric": self.metric,
            "tau": self.tau,
            "backend": self.backend,
            "runtime": backends.runtime(self.backend),  # library versions the pixels depend on
        }
        if self.budget is not None:  # each row's `tau` column then holds the tau found
            meta.update(budget=self.budget, max_tau=self.max_tau)
        return meta


def token_refs(resized: np.ndarray, token_size: int, method: str, metric: str, tau: float,
               budget: int | None = None, max_tau: float = 0.1) -> tuple[np.ndarray, float, BudgetResult | None]:
    """(ref, tau used, budget search without its ref) of a resized image: at `tau`, or with `budget`
    at the smallest tau <= max_tau that fits (budget.code_with_budget). The one place both are chosen."""
    if budget is None:
        return code_refs(resized, token_size, method, metric, tau), tau, None
    found = code_with_budget(resized, token_size, method, metric, budget, max_tau)
    return found.ref, found.tau, found.without_ref()


def code_array(image_id: str, resized: np.ndarray, source_size: tuple[int, int], config: CodingConfig) -> CodedImage:
    """Code an already resized uint8 (H, W, 3) image."""
    preset = config.preset
    height, width, _ = resized.shape
    ref, tau, found = token_refs(resized, preset.token_size, config.method, config.metric, config.tau,
                                 config.budget, config.max_tau)
    kept_index, index_map = layout(ref)
    pixels = gather_tokens(resized, kept_index, preset.patch_size, preset.merge_size)
    return CodedImage(
        id=image_id,
        source_width=source_size[0],
        source_height=source_size[1],
        width=width,
        height=height,
        grid_thw=(1, height // preset.patch_size, width // preset.patch_size),
        tokens=int(ref.shape[0]),
        kept=int(kept_index.shape[0]),
        tau=float(tau),
        kept_index=kept_index,
        index_map=index_map,
        pixels=pixels,
        over_budget=bool(found is not None and found.over_budget),
        budget=found,
    )


def code_image(image: Image.Image, config: CodingConfig, image_id: str = "") -> CodedImage:
    """Code a decoded PIL image (as `datasets` yields them)."""
    resized = backends.resize_for_model(image, config.preset, config.backend)
    return code_array(image_id, resized, image.size, config)


def process(image_id: str, read, config: CodingConfig, extra: dict | None = None) -> CodedImage | FailedImage:
    """Read, decode, resize and code one image; never raises for a bad image.

    `read(max_bytes)` returns the image bytes, or raises ReadFailure past
    max_bytes (`input_files.read_file`, `input_files.held_bytes`), so the bytes of a
    file are read in the worker that codes it.
    """
    start = time.perf_counter()
    stage = "read"
    try:
        data = read(config.max_image_bytes)
        stage = "decode"
        image = open_image(data, config.max_image_pixels)
        held = decoded_bytes(image) + backends.resize_bytes(image.size, config.backend)
        with DECODE_MEMORY.hold(held):  # shared by the workers: huge images take turns
            image = backends.load(image, config.backend)
            del data
            stage = "resize"
            source_size = image.size
            target = backends.target_size(source_size, config.preset, config.backend)
            rgb = backends.to_rgb(image, config.backend)
            del image  # the source's pixels go before the resize allocates its own
            resized = backends.resize(rgb, target, config.backend)
            del rgb
        stage = "code"
        coded = code_array(image_id, resized, source_size, config)
    except ImageFailure as exc:
        return FailedImage(image_id, exc.stage, exc.reason, extra or {})
    except StoreUnavailable:  # the store is down, not this image: the run stops, resumable
        raise
    except MemoryError:
        return FailedImage(image_id, stage, "out of memory", extra or {})
    except Exception as exc:  # a bad image must never take the run down
        return FailedImage(image_id, stage, one_line(exc), extra or {})
    coded.extra = extra or {}
    coded.seconds = time.perf_counter() - start
    return coded


def warm_up() -> list[str]:
    """Compile (or load from Numba's cache) every kernel signature a run uses; returns what was covered.

    Numba compiles on first call and caches next to the sources (or under
    NUMBA_CACHE_DIR when they are read-only), so a first run after install
    would otherwise pay several seconds. Signatures vary only with the token
    size (32 and 28 px: 8- and 4-byte words in the exact pass), so each preset
    codes a tiny image with every method and metric, at tau=0 and tau>0, and
    restores it. The coder hands kernels read-only views, so whether a caller's
    arrays are writable (the API) or not (decoded images, Arrow buffers) adds none.
    """
    from pixelprune_cli.coding.presets import PRESETS

    done = []
    for name in ("qwen3-vl", "qwen2-vl"):
        preset = PRESETS[name]
        ts = preset.token_size
        array = np.zeros((2 * ts, 2 * ts, 3), np.uint8)
        array[ts:, ts:] = 255  # one token differs, so the walks take both branches
        for method in METHODS:
            for metric, tau in [("max", 0.0), *((m, 0.05) for m in METRICS)]:
                row = code_array(name, array, (2 * ts, 2 * ts), CodingConfig(preset, method, metric, tau))
        scatter_tokens(row.pixels, row.index_map, row.height, row.width, preset.patch_size, preset.merge_size)
        done.append(f"{name} ({ts} px tokens)")
    from pixelprune_cli.coding.resize import fast_path_ok  # compiles the resize kernels and checks them against Pillow

    done.append("resize (same bytes as Pillow)" if fast_path_ok() else "resize (Pillow's: ours differs)")
    return done
