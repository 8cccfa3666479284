"""The bad-input corpus, generated into a folder on demand.

Nothing large is shipped or written: the decompression bomb is a hand-built
PNG of a few hundred bytes whose header declares 50000x50000 pixels, and the
other files are a few KB each. Each builder returns the bytes (or writes the
file) so tests can put the same input in a folder, a Parquet cell or a path.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 256  # 256x256 = qwen3-vl min_pixels and a multiple of 32: no resampling, exact pixels


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 (H, W, 3) with flat blocks and noise, so some tokens are kept and some dropped."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 200, dtype=np.uint8)
    img[: height // 2] = rng.integers(0, 256, size=(height // 2, width, 3), dtype=np.uint8)
    return img


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def png(height: int = SIDE, width: int = SIDE, seed: int = 0) -> bytes:
    return encode(Image.fromarray(noise(height, width, seed)))


def jpeg(height: int = SIDE, width: int = SIDE, seed: int = 0) -> bytes:
    return encode(Image.fromarray(noise(height, width, seed)), "JPEG", quality=90)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid-looking 8-bit RGB PNG declaring width x height (7.5 GB decoded at 50000^2).

    Only the first 16 rows of pixel data are present: the header alone must be
    enough to refuse it, so nothing past the IHDR should ever be inflated.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes(16 * (1 + 3 * width)), 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def palette_transparent() -> tuple[bytes, np.ndarray]:
    """P image, left half palette index 0 (fully transparent), right half opaque red.

    Returns the PNG and the RGB the processor sees (transparent -> white).
    """
    index = np.zeros((SIDE, SIDE), dtype=np.uint8)
    index[:, SIDE // 2:] = 1
    image = Image.fromarray(index, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    expected = np.full((SIDE, SIDE, 3), 255, dtype=np.uint8)
    expected[:, SIDE // 2:] = (255, 0, 0)
    return encode(image, transparency=0), expected


def la_image() -> tuple[bytes, np.ndarray]:
    """LA image: grey 100, alpha 0 in the top half (-> white), 255 below (-> grey 100)."""
    arr = np.zeros((SIDE, SIDE, 2), dtype=np.uint8)
    arr[..., 0] = 100
    arr[SIDE // 2:, :, 1] = 255
    expected = np.full((SIDE, SIDE, 3), 255, dtype=np.uint8)
    expected[SIDE // 2:] = 100
    return encode(Image.fromarray(arr, mode="LA")), expected


def sixteen_bit() -> bytes:
    """I;16 greyscale PNG (a 16-bit scan), values spread over 0..65535."""
    arr = (np.arange(SIDE * SIDE, dtype=np.uint32).reshape(SIDE, SIDE) * 7919 % 65536).astype("<u2")
    image = Image.frombytes("I;16", (SIDE, SIDE), arr.tobytes())
    return encode(image)


def cmyk_jpeg() -> bytes:
    rgb = Image.fromarray(noise(SIDE, SIDE, seed=3))
    return encode(rgb.convert("CMYK"), "JPEG", quality=95)


def frames(count: int = 3) -> list[Image.Image]:
    """Distinct RGB frames: frame k is noise with seed k (first frame is not the last)."""
    return [Image.fromarray(noise(SIDE, SIDE, seed=10 + k)) for k in range(count)]


def animated_gif() -> bytes:
    first, *rest = [f.quantize(64) for f in frames()]
    return encode(first, "GIF", save_all=True, append_images=rest, duration=100, loop=0)


def animated_webp() -> bytes:
    first, *rest = frames()
    return encode(first, "WEBP", save_all=True, append_images=rest, duration=100, loop=0, lossless=True)


def frame_png(animation: bytes, index: int = 0) -> bytes:
    """Frame `index` of an animation as a still RGB PNG (frame 0 is what the tool must code)."""
    image = Image.open(io.BytesIO(animation))
    image.seek(index)
    return encode(image.convert("RGB"))


def exif_rotated_jpeg(width: int = 320, height: int = 256) -> bytes:
    """A width x height JPEG stored with EXIF orientation 6 (displayed rotated: height x width)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(noise(height, width, seed=5)), "JPEG", quality=90, exif=exif.tobytes())


def upright_png(data: bytes) -> bytes:
    """An EXIF-oriented image with its rotation applied, as a PNG without EXIF."""
    from PIL import ImageOps

    return encode(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))


def random_bytes(size: int = 4096, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8).tobytes()


_FILE_CASES: dict[str, bytes] = {}


def file_cases() -> dict[str, bytes]:
    """Every single-file input of the corpus: file name -> bytes (built once, a few KB each)."""
    if not _FILE_CASES:
        _FILE_CASES.update({
            "zero_bytes.png": b"",
            "truncated.png": png()[:600],
            "truncated.jpg": jpeg()[:700],
            "random_bytes.png": random_bytes(),
            "text.png": b"this is a text file, not an image\n" * 4,
            "png_named.jpg": png(seed=7),
            "bomb_50000x50000.png": bomb_png(),
            "one_by_one.png": png(1, 1),
            "one_by_150.png": png(1, 150),
            "aspect_201.png": png(1, 201),
            "aspect_250_tall.png": png(500, 2),
            "tiny_20x12.png": png(12, 20),
            "sixteen_bit.png": sixteen_bit(),
            "cmyk.jpg": cmyk_jpeg(),
            "palette_transparency.png": palette_transparent()[0],
            "la.png": la_image()[0],
            "animated.gif": animated_gif(),
            "animated.webp": animated_webp(),
            "exif_rotated.jpg": exif_rotated_jpeg(),
        })
    return _FILE_CASES


def write_files(folder: Path, names=None) -> dict[str, Path]:
    """Write the single-file cases (all, or `names`) into folder; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in file_cases().items():
        if names is None or name in names:
            paths[name] = folder / name
            paths[name].write_bytes(data)
    return paths


def write_good(folder: Path, count: int, prefix: str = "good", side: int = SIDE) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        path = folder / f"{prefix}_{k:03d}.png"
        path.write_bytes(png(side, side, seed=100 + k))
        paths.append(path)
    return paths


# ----------------------------------------------------------------- Parquet

def hf_image_table(cells: list, extra: dict | None = None):
    """A table with an HF-style `image` struct<bytes, path> column (and HF metadata)."""
    import json

    import pyarrow as pa

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    columns = {"image": pa.array(cells, type=image_type)}
    for name, values in (extra or {}).items():
        columns[name] = pa.array(values)
    features = {"image": {"_type": "Image"}, **{n: {"dtype": "string", "_type": "Value"} for n in (extra or {})}}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    return pa.table(columns).replace_schema_metadata(meta)


def write_parquet(path: Path, table) -> Path:
    import pyarrow.parquet as pq

    pq.write_table(table, str(path))
    return path


def corrupt_middle(path: Path) -> None:
    """Overwrite the data pages with garbage, keeping the header magic and the footer intact."""
    data = bytearray(path.read_bytes())
    footer = struct.unpack("<I", bytes(data[-8:-4]))[0] + 8
    start, end = 4, len(data) - footer
    data[start:end] = random_bytes(end - start, seed=9)
    path.write_bytes(bytes(data))


def make_symlink_loop(folder: Path) -> None:
    """folder/sub/back -> folder: walking it naively never ends."""
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(folder, folder / "sub"), folder / "sub" / "back", target_is_directory=True)


def make_self_symlink(path: Path) -> None:
    os.symlink(path.name, path)
