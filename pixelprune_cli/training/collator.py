"""`PrunedCollator`: a batch of cached rows -> what `enable(model)(**batch)` takes, labels included.

The chat template renders each conversation; every image placeholder becomes
that image's kept tokens, as `hf.prepare_inputs` expands them, with the full
sequence's MRoPE ids at the kept tokens. Labels are the text tokens of the
assistant turns (or every text token, train_on='all'); image tokens and
padding get -100. The pixels stay arrays from the Arrow buffers to the
float32 `pixel_values`, normalised through the processor's 256-entry
per-channel tables. Needs torch and transformers (the `train` extra).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from pixelprune_cli.coding.backends import check_processor_fits, pillow_runtime_warning, rows_backend
from pixelprune_cli.coding.presets import PRESETS, resolve_preset
from pixelprune_cli.hf import IMAGE_TOKEN, _check_processor_matches, rope_positions
from pixelprune_cli.model import checked_model_row, row_pixels
from pixelprune_cli.training.pixels import pixel_values
from pixelprune_cli.training.rows import Sample, samples

IGNORE = -100
TRAIN_ON = ("assistant", "all")
TOO_LONG = ("raise", "drop")


def _meta(meta):
    """Metadata dict or preset name as given; any other string is an output's path or URL, read for its metadata."""
    if isinstance(meta, str) and meta not in PRESETS:
        from pixelprune_cli.outputs.readers import output_meta

        return output_meta(meta)
    return meta


class PrunedCollator:
    """Rows of a pixelprune cache (with a `messages` or `prompt`/`completion` column) -> a training batch.

    processor: the model's processor, or its tokenizer with a chat template.
    meta: the output's metadata, its path or URL, or a preset name.
    train_on: 'assistant' (the assistant turns, or the completion) or 'all'
    (every text token). max_length: longest sequence; a row longer than it is
    cut in its text after its last image, and a row whose images reach past
    it is refused (too_long='raise', ValueError) or left out with a warning
    (too_long='drop'). padding_side: 'right' (default) or 'left'.
    """

    def __init__(self, processor, meta="qwen3-vl", *, train_on: str = "assistant", max_length: int | None = None,
                 too_long: str = "raise", padding_side: str = "right"):
        for name, value, allowed in (("train_on", train_on, TRAIN_ON), ("too_long", too_long, TOO_LONG),
                                     ("padding_side", padding_side, ("right", "left"))):
            if value not in allowed:
                raise ValueError(f"{name} is {value!r}, not one of {', '.join(allowed)}")
        self.meta = _meta(meta)
        self.preset = resolve_preset(self.meta)
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError("PrunedCollator needs a fast tokenizer (its offsets place the labels)")
        _check_processor_matches(processor, self.preset)
        self.normalise_as = check_processor_fits(rows_backend(self.meta), processor)
        if (message := pillow_runtime_warning(self.meta)) is not None:
            warnings.warn(message, stacklevel=2)
        self.image_token = getattr(self.tokenizer, "image_token", None) or IMAGE_TOKEN
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.train_on, self.max_length, self.too_long, self.padding_side = train_on, max_length, too_long, padding_side

    def __call__(self, rows) -> dict:
        batch = samples(list(rows), self.preset.token_bytes)
        if not batch:
            raise ValueError("PrunedCollator got no rows")
        texts = [self._text_and_spans(sample) for sample in batch]
        segments = [text.split(self.image_token) for text, _ in texts]
        for sample, parts in zip(batch, segments):
            if len(parts) - 1 != len(sample.images):
                raise ValueError(f"row {sample.id!r}: the conversation holds {len(parts) - 1} image placeholders "
                                 f"({self.image_token}) but the row has {len(sample.images)} image(s)")
            for k, image in enumerate(sample.images):
                checked_model_row(image, self.preset, f"row {sample.id!r}, image {k}")
        flat = [part for parts in segments for part in parts]
        encoded = self.tokenizer(flat, add_special_tokens=False, return_offsets_mapping=True)
        sequences, kept_samples, at = [], [], 0
        for sample, parts, (_, spans) in zip(batch, segments, texts):
            ids, labels = self._sequence(sample, parts, spans, encoded, at)
            at += len(parts)
            if ids is not None:
                sequences.append((ids, labels))
                kept_samples.append(sample)
        if not sequences:
            raise ValueError(f"every row of this batch is longer than max_length={self.max_length} in its images")
        return self._tensors(kept_samples, sequences)

    def _render(self, messages: list, generation_prompt: bool = False) -> str:
        owner = self.processor if getattr(self.processor, "chat_template", None) else self.tokenizer
        return owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def _text_and_spans(self, sample: Sample) -> tuple[str, list[tuple[int, int]]]:
        """The rendered conversation and the character spans whose tokens are trained."""
        if sample.messages is None and isinstance(sample.prompt, str):
            text = sample.prompt + str(sample.completion)
            return text, [(0 if self.train_on == "all" else len(sample.prompt), len(text))]
        if sample.messages is not None:
            messages = _clean(sample.messages)
            turns = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
        else:
            prompt, completion = _clean(sample.prompt), _clean(sample.completion)
            messages, turns = prompt + completion, [len(prompt)]
        text = self._render(messages)
        if self.train_on == "all":
            return text, [(0, len(text))]
        spans = []
        for i in turns:
            start = self._render(messages[:i], generation_prompt=True)
            end = text if sample.messages is None else self._render(messages[:i + 1])
            if not (text.startswith(end) and end.startswith(start)):
                raise ValueError(f"row {sample.id!r}: the chat template does not render turn {i} as a prefix of the "
                                 "conversation, so its assistant tokens cannot be found; pass train_on='all'")
            spans.append((len(start), len(end)))
        return text, spans

    def _sequence(self, sample: Sample, parts: list[str], spans, encoded, at: int):
        """(input_ids, labels) of one sample as int64 arrays, or (None, None) when too_long='drop' drops it."""
        ids, labels, position = [], [], 0
        for j, part in enumerate(parts):
            tokens = np.asarray(encoded["input_ids"][at + j], dtype=np.int64)
            starts = position + np.asarray(encoded["offset_mapping"][at + j], dtype=np.int64).reshape(-1, 2)[:, 0]
            trained = np.zeros(len(tokens), dtype=bool)
            for a, b in spans:
                trained |= (starts >= a) & (starts < b)
            ids.append(tokens)
            labels.append(np.where(trained, tokens, IGNORE))
            position += len(part) + len(self.image_token)
            if j < len(sample.images):
                kept = len(sample.images[j]["kept_index"])
                ids.append(np.full(kept, self.image_token_id, dtype=np.int64))
                labels.append(np.full(kept, IGNORE, dtype=np.int64))
        input_ids, label_ids = np.concatenate(ids), np.concatenate(labels)
        if self.max_length is None or len(input_ids) <= self.max_length:
            return input_ids, label_ids
        image_end = int(np.flatnonzero(input_ids == self.image_token_id)[-1]) + 1 if sample.images else 0
        if image_end <= self.max_length:
            return input_ids[:self.max_length], label_ids[:self.max_length]
        message = (f"row {sample.id!r}: {len(input_ids)} tokens, its images reach token {image_end}, past "
                   f"max_length={self.max_length}; an image is never cut")
        if self.too_long == "raise":
            raise ValueError(message + " (pass too_long='drop' to leave such rows out)")
        warnings.warn(message + "; row left out", stacklevel=3)
        return None, None

    def _tensors(self, batch: list[Sample], sequences) -> dict:
        length = max(len(ids) for ids, _ in sequences)
        shape = (len(sequences), length)
        input_ids = np.full(shape, self.pad_id, dtype=np.int64)
        labels = np.full(shape, IGNORE, dtype=np.int64)
        attention_mask = np.zeros(shape, dtype=np.int64)
        for b, (ids, label_ids) in enumerate(sequences):
            where = slice(0, len(ids)) if self.padding_side == "right" else slice(length - len(ids), length)
            input_ids[b, where], labels[b, where], attention_mask[b, where] = ids, label_ids, 1
        images = [image for sample in batch for image in sample.images]
        unit = self.preset.merge_size ** 2
        grids = np.asarray([np.asarray(image["grid_thw"]).reshape(3) for image in images], dtype=np.int64)
        position_ids = rope_positions(input_ids, attention_mask, self.image_token_id, images,
                                      grids.reshape(-1, 3), self.preset.merge_size)
        out = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention_mask),
            "labels": torch.from_numpy(labels),
            "mm_token_type_ids": torch.from_numpy((input_ids == self.image_token_id).astype(np.int32)),
            "position_ids": torch.from_numpy(position_ids),
        }
        if images:
            kept_mask = np.zeros(int(grids.prod(-1).sum()) // unit, dtype=bool)
            offset = 0
            for grid, image in zip(grids, images):
                kept_mask[offset + np.asarray(image["kept_index"], dtype=np.int64)] = True
                offset += int(grid.prod()) // unit
            pixels = np.concatenate([row_pixels(image["pixels"], self.preset.token_bytes) for image in images])
            out["pixel_values"] = torch.from_numpy(pixel_values(pixels, self.preset, self.normalise_as))
            out["image_grid_thw"] = torch.from_numpy(grids)
            out["image_kept_mask"] = torch.from_numpy(kept_mask)
        return out


def _clean(messages) -> list[dict]:
    """Messages as the chat template expects them: content items without the null keys Arrow structs add."""
    out = []
    for message in messages or []:
        content = message.get("content")
        if isinstance(content, list):
            content = [{k: v for k, v in item.items() if v is not None} for item in content]
        out.append({**message, "content": content})
    return out
