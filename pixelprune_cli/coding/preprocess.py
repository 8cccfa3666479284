"""Decode, convert and resize images exactly as the Qwen-VL image processor does.

The reference is transformers' `Qwen2VLImageProcessorPil` fed a PIL image
decoded the way HuggingFace `datasets` decodes one. Every step below mirrors a
step of that pipeline, in the same order and on the same dtypes, so the uint8
pixels kept here become the processor's `pixel_values` bit for bit.
"""

from __future__ import annotations

import io
import math
import os
import threading
import warnings
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageOps

from pixelprune_cli.coding.presets import Preset
from pixelprune_cli.errors import DecodeFailure, ResizeFailure, one_line

# 8192 x 8192. An RGBA decode of this size is 256 MiB, and its RGB copy 256 MiB more
# (Pillow keeps RGB in 4 bytes a pixel); see decoded_bytes and docs/inputs.md, "Memory".
DEFAULT_MAX_IMAGE_PIXELS = 1 << 26
# Bytes read per image at most (--max-image-bytes): twice an uncompressed 8-bit RGBA file at
# the default pixel limit, so that a path to /dev/zero or a runaway file cannot grow memory.
DEFAULT_MAX_IMAGE_BYTES = 1 << 29
# decode_image checks every image against its own limit from the header, before
# decoding. Pillow's process-wide guard (Image.MAX_IMAGE_PIXELS) is left as the
# caller set it; it is lifted only while opening an image that it refuses and
# the call's own limit allows (see _open).
_LIFT_GUARD = threading.Lock()
MAX_ASPECT_RATIO = 200
_EXIF_ORIENTATION = 0x0112

# Pillow allocates a large image in blocks of 16 MiB. glibc serves an allocation that size
# from the allocating thread's arena once its dynamic mmap threshold has risen past it, and a
# worker thread's arena keeps what it frees; blocks of 32 MiB or more (the highest that
# threshold goes) are always mapped and given back on free. With 16 MiB blocks two workers
# peaked at 1.12-1.19x one worker on two 8192x8192 RGBA PNGs; with 64 MiB, 0.99-1.01x
# (bench/memory.py --huge 2). PILLOW_BLOCK_SIZE, when set, is the caller's choice.
if "PILLOW_BLOCK_SIZE" not in os.environ:
    Image.core.set_block_size(64 << 20)


def decode_image(data: bytes, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode image bytes as `datasets` does: first frame, EXIF orientation applied.

    The size is checked from the header before any pixel is decoded, so a
    decompression bomb is refused without allocating it.
    """
    return load_image(open_image(data, max_image_pixels))


def open_image(data: bytes, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """The image's header, checked against max_image_pixels; no pixel is decoded yet."""
    if not data:
        raise DecodeFailure("empty file (0 bytes)")
    try:
        image = _open(data)
    except Image.DecompressionBombError as exc:
        raise DecodeFailure(f"refused as a decompression bomb: {one_line(exc)}") from None
    except Image.UnidentifiedImageError:
        raise DecodeFailure("not an image, or an unknown or corrupt image format") from None
    except Exception as exc:  # Pillow raises many types for bad data
        raise DecodeFailure(f"not a readable image ({one_line(exc)})") from None
    width, height = image.size
    if width * height > max_image_pixels:
        raise DecodeFailure(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_image_pixels:,} (--max-image-pixels)"
        )
    return image


def load_image(image: Image.Image, orient: bool = True) -> Image.Image:
    """Decode the pixels of an opened image and apply its EXIF orientation (unless orient is False)."""
    try:
        image.load()
        if orient and image.getexif().get(_EXIF_ORIENTATION) is not None:
            image = ImageOps.exif_transpose(image)
    except Exception as exc:
        raise DecodeFailure(f"cannot decode {image.format or 'image'} data ({one_line(exc)})") from None
    return image


def decoded_bytes(image: Image.Image) -> int:
    """Memory an opened image takes from decode to resize: its pixels, and their RGB copy when one is made.

    Pillow stores 1 byte per pixel for 1, L and P, 2 for 16-bit modes, 4 for the rest (RGB too).
    """
    width, height = image.size
    own = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    return width * height * (own + (0 if image.mode == "RGB" else 4))


def _open(data: bytes) -> Image.Image:
    """Image.open (the header only), leaving the pixel limit to the caller of this function.

    When Pillow's process-wide guard refuses the image, it is lifted for this
    one open, under a lock, and put back at once; open_image then applies the
    call's own max_image_pixels, with a message that names the option.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            pass
        with _LIFT_GUARD:
            guard, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                return Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = guard


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB as the processor makes it: anything with alpha or a transparency key goes onto white."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        return _composite_on_white(image)
    if image.mode == "RGB":
        return image  # convert("RGB") would only copy it
    return image.convert("RGB")


COMPOSITE_ROWS = 256  # rows composited at a time


def _composite_on_white(image: Image.Image) -> Image.Image:
    """The processor's RGBA -> alpha_composite onto white -> RGB, a band of rows at a time.

    Each step is per pixel, so bands give the same bytes as the whole image,
    while only the source and the RGB result are held in full: the RGBA copy,
    the white canvas and the composite never exist at full size.
    """
    width, height = image.size
    out = Image.new("RGB", image.size)
    for top in range(0, height, COMPOSITE_ROWS):
        band = image.crop((0, top, width, min(height, top + COMPOSITE_ROWS))).convert("RGBA")
        white = Image.new("RGBA", band.size, (255, 255, 255, 255))
        out.paste(Image.alpha_composite(white, band).convert("RGB"), (0, top))
    return out


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Target (height, width): multiples of `factor`, aspect kept, pixel count within bounds.

    Same arithmetic as the processor: Python round (half to even), the floor
    branch above max_pixels, the ceil branch below min_pixels.
    """
    if height < 1 or width < 1:
        raise ResizeFailure(f"image has no pixels ({width}x{height})")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ResizeFailure(
            f"aspect ratio {max(height, width) / min(height, width):.1f} of {width}x{height} is over "
            f"{MAX_ASPECT_RATIO}, which the model's processor refuses"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def model_size(size: tuple[int, int], preset: Preset) -> tuple[int, int]:
    """(width, height) the model sees an image of `size` (width, height) at; ResizeFailure if it refuses it."""
    width, height = size
    new_height, new_width = smart_resize(height, width, preset.token_size, preset.min_pixels, preset.max_pixels)
    return new_width, new_height


def convert_rgb(image: Image.Image) -> Image.Image:
    """RGB as the processor makes it (anything with alpha or a transparency key onto white); DecodeFailure if Pillow cannot."""
    try:
        return _to_rgb(image)
    except Exception as exc:
        raise DecodeFailure(f"cannot convert mode {image.mode} to RGB ({one_line(exc)})") from None


def resize_rgb(rgb: Image.Image, target: tuple[int, int]) -> np.ndarray:
    """An RGB image resized (BICUBIC on uint8) to target (width, height), as a C-contiguous uint8 (H, W, 3) array."""
    from pixelprune_cli.coding.resize import resize_bicubic  # Pillow's bytes, faster (Numba: not imported for --help)

    try:
        resized = resize_bicubic(rgb, target)  # at the same size, the pixels as they are
    except MemoryError:
        raise ResizeFailure(f"out of memory resizing {rgb.width}x{rgb.height} to {target[0]}x{target[1]}") from None
    return np.asarray(resized)


class MemoryBudget:
    """Bytes that worker threads share for decoding: an image waits until its share is free.

    Small images never wait on each other; images at the pixel limit decode
    one or two at a time, not one per worker. An image needing more than the
    whole budget waits until it has it all (it runs alone) rather than never.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.free = capacity
        self.changed = threading.Condition()

    @contextmanager
    def hold(self, amount: int):
        amount = min(amount, self.capacity)
        with self.changed:
            self.changed.wait_for(lambda: self.free >= amount)
            self.free -= amount
        try:
            yield
        finally:
            with self.changed:
                self.free += amount
                self.changed.notify_all()


# 512 MiB: one 8192x8192 RGBA image (the default --max-image-pixels) and its RGB copy.
DECODE_MEMORY = MemoryBudget(512 << 20)
