"""`prune_image`: one image to the row `compress` writes for it, for data loaders that prune on the fly.

Above the per-image function (`pipeline`): it reads a path or bytes with the
input readers, which the per-image function never imports.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image

from pixelprune_cli.coding import backends
from pixelprune_cli.coding.pipeline import CodingConfig, code_image, process
from pixelprune_cli.coding.preprocess import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from pixelprune_cli.errors import BadImage, ConfigError, DecodeFailure, ImageFailure, one_line
from pixelprune_cli.inputs.input_files import held_bytes, read_file
from pixelprune_cli.records import FailedImage


def prune_image(image, preset="qwen3-vl", method: str = "pred_2d", metric: str = "max", tau: float = 0.0,
                image_id: str | None = None, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES, backend: str | None = None) -> dict:
    """One image to the row `compress` writes for it, for data loaders that prune on the fly.

    image: a PIL image (as `datasets` yields it), a path, or the file's bytes;
    paths and bytes are decoded as `compress` decodes them (EXIF orientation,
    first frame). preset: a name, a Preset or an output's `pixelprune`
    metadata. The id is the file name for a path and "" otherwise, unless
    image_id is given. max_image_pixels and max_image_bytes are compress's
    limits (refused from the header, before decoding; bytes read of a file).
    backend: the processor to match (`backends`); by default the metadata's,
    or pil; qwen-vl-utils takes fetch_image's pixel bounds for a preset name.
    Raises errors.BadImage naming the image and the stage that failed, or
    ConfigError naming the argument that is wrong (both are ValueErrors). Needs numpy and Pillow only, and torchvision for
    that backend.
    """
    if backend is None:
        backend = backends.rows_backend(preset)
    elif isinstance(preset, dict) and backends.rows_backend(preset) != backend:
        raise ConfigError(f"backend {backend!r} differs from the metadata's {backends.rows_backend(preset)!r}")
    config = CodingConfig(backends.preset_for(backend, preset), method, metric, float(tau), max_image_pixels,
                          max_image_bytes, backend=backend)
    if isinstance(image, Image.Image):
        label = image_id if image_id is not None else ""
        try:
            coded = code_image(_loaded(image, max_image_pixels), config, label)
        except ImageFailure as exc:
            raise BadImage(f"{label or 'image'}: {exc.stage} failed: {_in_api_terms(exc.reason)}", exc.stage) from None
        except MemoryError:
            raise BadImage(f"{label or 'image'}: out of memory", "resize") from None
        except Exception as exc:  # a mode or plugin Pillow cannot convert: as process() records it, one line
            raise BadImage(f"{label or 'image'}: resize failed: {one_line(exc)}", "resize") from None
        return coded.as_row()
    if isinstance(image, (bytes, bytearray, memoryview)):
        label, read = (image_id if image_id is not None else ""), held_bytes(bytes(image))
    elif isinstance(image, (str, os.PathLike)):
        path = Path(image)
        label = image_id if image_id is not None else path.name
        read = functools.partial(read_file, str(path))
    else:
        raise ConfigError(f"image must be a PIL image, a path or the file's bytes, not {type(image).__name__}"
                         + (" (PIL.Image.fromarray makes an image of an array)" if isinstance(image, np.ndarray) else ""))
    result = process(label, read, config)
    if isinstance(result, FailedImage):
        raise BadImage(f"{label or 'image'}: {result.stage} failed: {_in_api_terms(result.reason)}", result.stage)
    return result.as_row()


def _loaded(image: Image.Image, max_image_pixels: int) -> Image.Image:
    """A caller's PIL image with its pixels decoded; DecodeFailure for one over the limit or one that will not load.

    An image from Image.open is only a header until load(): a truncated file,
    or a plugin that raises, fails here as the image's decode error.
    """
    width, height = image.size
    if width * height > max_image_pixels:
        raise DecodeFailure(f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
                            f"{max_image_pixels:,} (max_image_pixels)")
    try:
        image.load()
    except Exception as exc:  # Pillow raises many types for bad data
        raise DecodeFailure(f"cannot decode {image.format or 'image'} data ({one_line(exc)})") from None
    return image


# Per-image reasons name compress's flags (they land in error logs whichever way a run was started);
# prune_image takes the same limits as parameters.
_API_NAMES = {"--max-image-pixels": "max_image_pixels", "--max-image-bytes": "max_image_bytes"}


def _in_api_terms(reason: str) -> str:
    for flag, parameter in _API_NAMES.items():
        reason = reason.replace(f"({flag})", f"({parameter})")
    return reason
