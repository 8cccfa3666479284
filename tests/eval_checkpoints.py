"""Tiny random Qwen-VL checkpoints saved to disk, and benchmark tables, for the `pixelprune eval` tests.

A checkpoint folder holds what `from_pretrained` reads: config and weights,
the offline tokenizer of tests/hf_models.py with its chat template, and the
processor (transformers' torchvision image processor, as AutoProcessor gives
it when torchvision is installed; a Qwen-VL processor also needs its video
processor, which needs torchvision).
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
from transformers import (
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

import hf_models as tiny

PROCESSORS = {"qwen2_vl": (Qwen2VLProcessor, Qwen2VLVideoProcessor),
              "qwen2_5_vl": (Qwen2VLProcessor, Qwen2VLVideoProcessor),
              "qwen3_vl": (Qwen3VLProcessor, Qwen3VLVideoProcessor)}


def save_checkpoint(folder, family: str, max_pixels: int) -> None:
    preset = tiny.small_preset(family, max_pixels)
    image_processor = Qwen2VLImageProcessor(
        patch_size=preset.patch_size, merge_size=preset.merge_size, temporal_patch_size=preset.temporal_patch_size,
        size={"shortest_edge": preset.min_pixels, "longest_edge": preset.max_pixels},
        image_mean=list(preset.image_mean), image_std=list(preset.image_std))
    processor_class, video_class = PROCESSORS[family]
    processor = processor_class(image_processor=image_processor, tokenizer=tiny.tokenizer(),
                                video_processor=video_class(), chat_template=tiny.CHAT_TEMPLATE)
    tiny.tiny_model(family).save_pretrained(folder)
    processor.save_pretrained(folder)


def png_bytes(path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def write_table(path, images: list[bytes], columns: dict) -> None:
    """A Parquet table in lmms-lab's layout: an HF image struct {bytes, path} and the task's columns."""
    cells = [{"bytes": data, "path": None} for data in images]
    table = pa.table({"image": pa.array(cells, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      **columns})
    pq.write_table(table, path)


def image_file_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
