"""Varied test images, made in memory, shared by the conformance tests.

Each sample is either a PIL image (what a caller hands to `code_image`) or
encoded bytes (what a file or Parquet cell holds, decoded by both sides).
Sizes cover the smart_resize branches (below min_pixels, exact .5 rounding,
extreme aspect ratios, a large image for the max_pixels floor), and modes
cover every path of the RGB conversion (alpha, palette transparency, tRNS,
CMYK, 16-bit, bilevel, EXIF rotation). Content mixes flat areas (tokens the
coder drops) with noise and gradients (tokens it must keep).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

BACKGROUND = (244, 241, 236)


@dataclass(frozen=True)
class Sample:
    """One test image: `image` in memory, or `data` to decode (never both)."""

    name: str
    image: Image.Image | None = None
    data: bytes | None = None


def content(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 (H, W, 3): flat background and blocks, a noisy band, a gradient band."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    for _ in range(3):  # flat blocks: whole tokens equal to their neighbours
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        y1, x1 = min(height, y0 + max(1, height // 4)), min(width, x0 + max(1, width // 3))
        img[y0:y1, x0:x1] = rng.integers(0, 256, size=3)
    y0, y1 = int(height * 0.55), int(height * 0.7)
    img[y0:y1, : width // 2] = rng.integers(0, 256, size=(y1 - y0, width // 2, 3))
    x0 = int(width * 0.75)
    yy, xx = np.mgrid[0:height, x0:width]
    img[:, x0:, 0] = (yy * 255 // max(1, height - 1)).astype(np.uint8)
    img[:, x0:, 1] = ((xx - x0) * 255 // max(1, width - x0)).astype(np.uint8)
    img[:, x0:, 2] = 128
    return img


def _rgb(height: int, width: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(content(height, width, seed))


def _alpha(height: int, width: int) -> np.ndarray:
    """Opaque, fully transparent and half-transparent regions, plus a ramp."""
    a = np.full((height, width), 255, dtype=np.uint8)
    a[: height // 3, : width // 3] = 0
    a[height // 3: height // 2, :] = 128
    a[:, -max(1, width // 5):] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    return a


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _palette(height: int, width: int, seed: int) -> Image.Image:
    return _rgb(height, width, seed).quantize(colors=24)


def _palette_with_index_transparency() -> Image.Image:
    image = _palette(230, 310, 5)
    image.info["transparency"] = image.getpixel((0, image.height - 1))  # the background's index
    return image


def _palette_png_with_alpha_table() -> bytes:
    image = _palette(200, 260, 6)
    alphas = bytes((i * 37) % 256 for i in range(len(image.getpalette()) // 3))
    return _encode(image, "PNG", transparency=alphas)


def _rgb_with_trns() -> bytes:
    return _encode(_rgb(210, 330, 7), "PNG", transparency=BACKGROUND)


def _rgb_with_trns_in_memory() -> Image.Image:
    image = _rgb(150, 190, 8)
    image.info["transparency"] = BACKGROUND
    return image


def _exif_rotated_jpeg(orientation: int, seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_rgb(180, 300, seed), "JPEG", quality=90, exif=exif.tobytes())


def _i16() -> Image.Image:
    luminance = content(260, 180, 11).mean(axis=2)
    return Image.fromarray((luminance * 257).astype(np.uint16))  # mode I;16


def _i32() -> Image.Image:
    return Image.fromarray(content(140, 260, 12)[..., 1].astype(np.int32) * 3)  # mode I


@functools.cache
def samples() -> tuple[Sample, ...]:
    """The conformance corpus (>= 20 images); built once per process."""
    la = Image.merge("LA", (_rgb(199, 257, 2).convert("L"), Image.fromarray(_alpha(199, 257))))
    rgba = _rgb(240, 280, 4)
    rgba.putalpha(Image.fromarray(_alpha(240, 280)))
    return (
        Sample("rgb_1x1", image=Image.new("RGB", (1, 1), (12, 200, 99))),
        Sample("rgb_tiny_7x5", image=_rgb(5, 7, 1)),  # far below min_pixels: ceil branch
        Sample("rgb_strip_500x3", image=_rgb(3, 500, 1)),  # aspect 167, rounds to 0 rows
        Sample("rgb_tall_90x700", image=_rgb(700, 90, 1)),
        Sample("rgb_wide_1000x120", image=_rgb(120, 1000, 1)),
        # 336/32 = 10.5 and 350/28 = 12.5: round half to even gives 10 and 12, not 11 and 13.
        Sample("rgb_half_even_350x336", image=_rgb(336, 350, 3)),
        Sample("rgb_half_even_742x208", image=_rgb(208, 742, 3)),  # 208/32 = 6.5, 742/28 = 26.5
        Sample("rgb_no_resize_640x448", image=_rgb(448, 640, 3)),  # already a multiple of 32
        Sample("rgb_large_1600x1200", image=_rgb(1200, 1600, 9)),
        Sample("rgb_flat_400x300", image=Image.new("RGB", (400, 300), BACKGROUND)),
        Sample("rgb_noise_300x220", image=Image.fromarray(
            np.random.default_rng(10).integers(0, 256, size=(220, 300, 3), dtype=np.uint8))),
        Sample("L_300x200", image=_rgb(200, 300, 2).convert("L")),
        Sample("LA_257x199", image=la),
        Sample("P_320x240", image=_palette(240, 320, 4)),
        Sample("P_index_transparency_310x230", image=_palette_with_index_transparency()),
        Sample("P_png_alpha_table_260x200", data=_palette_png_with_alpha_table()),
        Sample("PA_200x150", image=_palette(150, 200, 13).convert("PA")),
        Sample("RGBA_280x240", image=rgba),
        Sample("RGB_png_trns_330x210", data=_rgb_with_trns()),
        Sample("RGB_trns_in_memory_190x150", image=_rgb_with_trns_in_memory()),
        Sample("CMYK_270x210", image=_rgb(210, 270, 5).convert("CMYK")),
        Sample("CMYK_jpeg_220x160", data=_encode(_rgb(160, 220, 6).convert("CMYK"), "JPEG", quality=92)),
        Sample("I16_180x260", image=_i16()),
        Sample("I_260x140", image=_i32()),
        Sample("bilevel_1_333x222", image=_rgb(222, 333, 7).convert("1", dither=Image.Dither.NONE)),
        Sample("bilevel_dithered_200x120", image=_rgb(120, 200, 8).convert("1")),
        Sample("jpeg_plain_300x180", data=_encode(_rgb(180, 300, 14), "JPEG", quality=85)),
        Sample("jpeg_exif_rotate_90", data=_exif_rotated_jpeg(6, 15)),
        Sample("jpeg_exif_mirror_rotate", data=_exif_rotated_jpeg(7, 16)),
        Sample("png_16bit_gray_210x170", data=_encode(
            Image.fromarray(content(170, 210, 17)[..., 0].astype(np.uint16) * 200), "PNG")),
    )


def by_name(name: str) -> Sample:
    return next(s for s in samples() if s.name == name)
