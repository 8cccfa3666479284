"""One image's picture of what the coder keeps (`pixelprune show FILE`), drawn with Pillow and numpy only.

An overlay is the resized image at 1:1 (the pixels the model sees), with
dropped tokens greyed, darkened and hatched and kept tokens left as they are,
a faint token grid, and a caption. Greying alone has a fixed point (a token
already of the grey colour would not change), so dropped tokens also get a
sparse diagonal hatch in a colour that contrasts with them: every dropped
token is marked, whatever its colour. With `side_by_side`, the image restored
from the kept tokens and an error heat map follow.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pixelprune_cli.coding.backends import resize_for_model
from pixelprune_cli.coding.pipeline import token_refs
from pixelprune_cli.coding.presets import resolve_preset
from pixelprune_cli.coding.tokens import gather_tokens, layout, scatter_tokens
from pixelprune_cli.model import row_pixels

# dropped pixel = DROPPED_KEEP * pixel + (1 - DROPPED_KEEP) * DROPPED_GREY: white -> 168, black -> 53
DROPPED_KEEP = 0.45
DROPPED_GREY = 96
HATCH_PERIOD = 8  # one hatch pixel in 8 along each row: (x + y) % 8 == 0
HATCH_DARK, HATCH_LIGHT = 24, 216
GRID_COLOUR = np.array([0, 150, 255], dtype=np.float32)
GRID_ALPHA = 0.3  # faint: 30% grid colour over the pixel
PANEL_GAP = 8
PADDING = 4
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (20, 20, 20)


CAPTION_MIN_SIZE = 13  # px: the smallest caption font, for pictures up to 910 px wide
CAPTION_WIDTH_PER_PX = 70  # a caption's font grows with its picture: one font pixel per 70 picture pixels


def caption_size(width: int) -> int:
    """Font size for a caption under a picture `width` pixels wide, so a 1,900 px picture gets 27 px, not 13."""
    return max(CAPTION_MIN_SIZE, round(width / CAPTION_WIDTH_PER_PX))


@functools.lru_cache(maxsize=32)
def caption_font(size: int = CAPTION_MIN_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def saving_text(kept: int | float, tokens: int | float) -> str:
    """The reduction as a caption shows it: `-47.3%`, `0%` when nothing is saved (never `-0.0%`), `-<0.1%`."""
    saved = 100.0 * (1 - kept / tokens) if tokens else 0.0
    if saved <= 0:
        return "0%"
    return f"-{saved:.1f}%" if saved >= 0.05 else "-<0.1%"


def line_height(font) -> int:
    _, _, _, bottom = font.getbbox("Agjy|%")
    return bottom + 3


def text_width(font, text: str) -> float:
    return font.getlength(text)


def wrap_caption(caption: str, width: int, font=None) -> list[str]:
    """Caption lines that fit `width` pixels: explicit newlines kept, then greedy word wrap."""
    font = font or caption_font()
    usable = max(1, width - 2 * PADDING)
    lines: list[str] = []
    for paragraph in caption.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = word if not line else f"{line} {word}"
            if line and text_width(font, candidate) > usable:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def caption_bar_height(caption: str, width: int) -> int:
    """Height in pixels of the caption bar drawn under a picture `width` pixels wide (its font scales with it)."""
    font = caption_font(caption_size(width))
    return len(wrap_caption(caption, width, font)) * line_height(font) + 2 * PADDING


def _draw_caption(canvas: Image.Image, top: int, caption: str) -> None:
    font = caption_font(caption_size(canvas.width))
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(wrap_caption(caption, canvas.width, font)):
        draw.text((PADDING, top + PADDING + k * line_height(font)), line, fill=TEXT_COLOUR, font=font)


def token_mask(keep: np.ndarray, token_size: int) -> np.ndarray:
    """(th, tw) bool per token -> (th*ts, tw*ts) bool per pixel."""
    return np.repeat(np.repeat(keep, token_size, axis=0), token_size, axis=1)


def rebuild(resized: np.ndarray, ref: np.ndarray, token_size: int) -> np.ndarray:
    """The image restore gives for this coding: each position painted by its kept token."""
    h, w, _ = resized.shape
    kept_index, index_map = layout(np.asarray(ref, dtype=np.int32).reshape(-1))
    # Any patch x merge split of the token gives the same image; one patch per token is simplest.
    pixels = gather_tokens(resized, kept_index, token_size, 1)
    return scatter_tokens(pixels, index_map, h, w, token_size, 1)


def mark_dropped(resized: np.ndarray, ref: np.ndarray, token_size: int, grid: bool = True, hatch: bool = True) -> np.ndarray:
    """The overlay panel: dropped tokens greyed, darkened and hatched; kept tokens untouched.

    The grid is drawn on the first pixel row and column of each token (not the
    image's outer edge), so a token's pixels from row 1 and column 1 on are
    only ever changed by its own kept/dropped marking.
    """
    h, w, _ = resized.shape
    th, tw = h // token_size, w // token_size
    ref = np.asarray(ref).reshape(-1)
    keep = (ref == np.arange(th * tw)).reshape(th, tw)
    dropped = ~token_mask(keep, token_size)
    out = resized.astype(np.float32)
    out[dropped] = DROPPED_KEEP * out[dropped] + (1.0 - DROPPED_KEEP) * DROPPED_GREY
    if hatch:
        yy, xx = np.indices((h, w))
        lines = dropped & ((xx + yy) % HATCH_PERIOD == 0)
        light = out.mean(axis=2) >= 110
        out[lines & light] = HATCH_DARK
        out[lines & ~light] = HATCH_LIGHT
    if grid:  # one blend per pixel, crossings included
        lines = np.zeros((h, w), dtype=bool)
        lines[token_size::token_size, :] = True
        lines[:, token_size::token_size] = True
        out[lines] = (1 - GRID_ALPHA) * out[lines] + GRID_ALPHA * GRID_COLOUR
    return np.rint(out).clip(0, 255).astype(np.uint8)


def error_map(original: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """(H, W) uint8: per pixel, the largest absolute channel difference."""
    return np.abs(original.astype(np.int16) - restored.astype(np.int16)).max(axis=2).astype(np.uint8)


def token_errors(original: np.ndarray, restored: np.ndarray, token_size: int, metric: str) -> np.ndarray:
    """(th, tw) float: each token's error under `metric`, in [0,1] units, as the coder measures it against tau.

    With d the integer differences of a token's uint8 values and n their
    count: max = max|d|/255, mae = sum|d|/(255 n), rmse = sqrt(sum d^2/(255^2 n)).
    """
    h, w, c = original.shape
    th, tw = h // token_size, w // token_size
    d = original.astype(np.int32) - restored.astype(np.int32)
    d = d.reshape(th, token_size, tw, token_size, c).transpose(0, 2, 1, 3, 4).reshape(th, tw, -1)
    if metric == "max":
        return np.abs(d).max(axis=2) / 255.0
    if metric == "mae":
        return np.abs(d).sum(axis=2) / (255.0 * d.shape[2])
    return np.sqrt((d.astype(np.int64) ** 2).sum(axis=2) / (255.0 ** 2 * d.shape[2]))


def describe_error(worst: float, metric: str, tau: float) -> str:
    """The largest per-token error, said plainly: a black heat map must not look like a broken one."""
    if worst == 0:
        return "largest per-token error: 0 (restored = resized image, nothing lost)"
    return f"largest per-token error: {worst:.4g} ({metric}; tau {tau:.4g})"


def heat_colours(errors: np.ndarray, scale: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 heat map, black -> red -> yellow -> white; `scale` (default: the max) is white."""
    scale = max(1, int(errors.max()) if scale is None else int(scale))
    t = np.clip(errors.astype(np.float32) / scale, 0.0, 1.0)[..., None] * 3.0
    ramp = np.clip(t - np.array([0.0, 1.0, 2.0], dtype=np.float32), 0.0, 1.0)
    return np.rint(ramp * 255).astype(np.uint8)


def render_overlay(resized: np.ndarray, ref: np.ndarray, token_size: int, caption: str,
                   side_by_side: bool = False, restored: np.ndarray | None = None,
                   error_map: np.ndarray | None = None, grid: bool = True) -> Image.Image:
    """Overlay panel (+ restored image, + error heat map when given) above a caption bar.

    Panels are the resized image's size, separated by PANEL_GAP white pixels;
    the picture is as wide as the panels and as tall as the image plus the
    caption bar (`caption_bar_height`).
    """
    h, w, _ = resized.shape
    panels = [mark_dropped(resized, ref, token_size, grid=grid)]
    if side_by_side:
        panels.append(rebuild(resized, ref, token_size) if restored is None else restored)
        if error_map is not None:
            panels.append(heat_colours(error_map))
    width = len(panels) * w + (len(panels) - 1) * PANEL_GAP
    canvas = Image.new("RGB", (width, h + caption_bar_height(caption, width)), BACKGROUND)
    for k, panel in enumerate(panels):
        canvas.paste(Image.fromarray(np.ascontiguousarray(panel)), (k * (w + PANEL_GAP), 0))
    _draw_caption(canvas, h, caption)
    return canvas


def caption_for(preset: str, method: str, metric: str, tau: float, kept: int, tokens: int,
                title: str | None = None, note: str | None = None) -> str:
    """The caption text: preset, method, metric, tau, kept/total, reduction (ASCII, any font draws it)."""
    line = (f"{preset} | {method} | {metric} | tau={tau:.4g} | kept {kept}/{tokens} tokens | "
            f"{saving_text(kept, tokens)}")
    parts = [title] if title else []
    parts.append(line)
    if note:
        parts.append(note)
    return "\n".join(parts)


LARGEST_ERROR = "pixelprune_largest_token_error"
_SIDE_NOTE = "left: kept tokens (dropped greyed + hatched) | middle: restored from kept tokens"


def overlay_for_image(pil_image: Image.Image, config, side_by_side: bool = False, budget: int | None = None,
                      max_tau: float = 0.1, title: str | None = None) -> Image.Image:
    """Resize and code a decoded image with `config` (a pipeline.CodingConfig), then draw it.

    With `budget`, tau is searched as `compress --budget` does (budget.code_with_budget).
    The error heat map (third panel) appears for tau > 0, where restore can differ.
    """
    preset = config.preset
    resized = resize_for_model(pil_image, preset, config.backend)
    ts = preset.token_size
    note = None
    ref, tau, found = token_refs(resized, ts, config.method, config.metric, config.tau, budget, max_tau)
    if found is not None:
        note = f"budget {budget} tokens" + (f": over budget at max tau {max_tau:g}" if found.over_budget else "")
    kept = int(np.count_nonzero(ref == np.arange(ref.shape[0])))
    restored = errors = None
    if side_by_side:
        restored = rebuild(resized, ref, ts)
        side = _SIDE_NOTE
        if tau > 0:
            errors = error_map(resized, restored)
            side += f" | right: |error|, max over channels, white = {max(1, int(errors.max()))}/255"
        worst = float(token_errors(resized, restored, ts, config.metric).max())
        side += "\n" + describe_error(worst, config.metric, tau)
        note = side if note is None else f"{note}\n{side}"
    caption = caption_for(preset.name, config.method, config.metric, tau, kept, ref.shape[0], title, note)
    picture = render_overlay(resized, ref, ts, caption, side_by_side, restored, errors)
    if side_by_side:
        picture.info[LARGEST_ERROR] = (worst, tau)  # for the command's own message (Pillow does not save it)
    return picture


def _row_array(value, dtype) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else np.asarray(value, dtype=dtype)


def row_image(row: dict, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """(image, ref) of an output row: the image its kept tokens rebuild, and each position's kept token."""
    preset = resolve_preset(meta)
    index_map = _row_array(row["index_map"], np.int32)
    kept_index = _row_array(row["kept_index"], np.int32)
    pixels = row_pixels(row["pixels"], preset.token_bytes)
    image = scatter_tokens(pixels, index_map, int(row["height"]), int(row["width"]), preset.patch_size, preset.merge_size)
    return image, kept_index[index_map]


def overlay_for_row(row: dict, meta: dict, side_by_side: bool = False) -> Image.Image:
    """Draw a row of a compressed output (`pyarrow` to_pylist form, or numpy arrays).

    The base image is the one the row's kept tokens rebuild (equal to the
    resized source at tau=0). The source itself is not in the output, so there
    is no error heat map here.
    """
    preset = resolve_preset(meta)
    image, ref = row_image(row, meta)
    note = _SIDE_NOTE if side_by_side else None
    caption = caption_for(preset.name, meta.get("method", "?"), meta.get("metric", "?"), float(row["tau"]),
                          int(row["kept"]), int(row["tokens"]), str(row.get("id", "")) or None, note)
    return render_overlay(image, ref, preset.token_size, caption, side_by_side, restored=image)
