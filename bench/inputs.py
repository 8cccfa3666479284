"""Bench inputs: document pages, scans, screenshots and phone screens, drawn from fixed seeds.

The benchmark needs images that behave like what users feed a VLM: rendered
pages with large flat margins and anti-aliased text, scans whose paper is not
quite flat, desktop and phone screenshots with gradients, photos and many flat
widgets. Everything is drawn with Pillow and numpy from fixed seeds, so a rerun
gives the same pixels, and the files are cached under bench/_work/ (gitignored)
keyed by a version number: bump GENERATOR_VERSION whenever a drawing changes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

WORK = Path(__file__).resolve().parent / "_work"
FOLDER = WORK / "folder"
GENERATOR_VERSION = 4

WORDS = (
    "the of and to in is that for it as with was on be by this are from at an or which data model image "
    "token visual layout page section report value result method system table figure document process "
    "input output review analysis summary budget quarter region policy account service customer network "
    "update record number balance total invoice payment date project team schedule meeting design window "
    "screen button option setting profile message status version release feature support request response"
).split()

_FONTS: dict[int, ImageFont.FreeTypeFont] = {}


def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font (cached per size)."""
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def words(rng: np.random.Generator, n: int) -> str:
    text = " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n))
    return text[:1].upper() + text[1:]


def text_block(rng, draw, x, y, width, bottom, size, line_gap, fill=(20, 20, 20)) -> int:
    """Paragraphs of justified-looking lines from y down to bottom; returns the next y."""
    fnt = font(size)
    per_line = max(3, int(width / (size * 3.7)))
    while y + size < bottom:
        n_lines = int(rng.integers(3, 9))
        for k in range(n_lines):
            if y + size >= bottom:
                break
            n = per_line if k < n_lines - 1 else int(per_line * rng.uniform(0.3, 0.8))
            draw.text((x, y), words(rng, max(2, n)), font=fnt, fill=fill)
            y += int(size * line_gap)
        y += size
    return y


def smooth_noise(rng, h, w, cells, amplitude) -> np.ndarray:
    """Low-frequency noise (h, w) float32: a coarse random grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    up = Image.fromarray(grid, mode="F").resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(up) * amplitude


def photo(rng, w, h) -> Image.Image:
    """A photo-like RGB picture: sky gradient, mottled ground, blur (no two tokens equal)."""
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = np.array([110, 160, 225], np.float32) * (1 - y) + np.array([235, 215, 190], np.float32) * y
    img = np.broadcast_to(sky, (h, w, 3)).copy()
    horizon = int(h * rng.uniform(0.45, 0.65))
    img[horizon:] = np.array([70, 110, 55], np.float32)
    img += smooth_noise(rng, h, w, 12, 18)[..., None]
    img += rng.normal(0, 4, (h, w, 1)).astype(np.float32)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    return pil.filter(ImageFilter.GaussianBlur(1.0))


# ---------------------------------------------------------------- documents


def document_page(w: int, h: int, seed: int) -> Image.Image:
    """A born-digital page at print resolution: title, sections, a table, a figure, footer."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    s = w / 850  # sizes relative to a 850 px wide page
    left, right = int(90 * s), int(w - 90 * s)
    d.text((left, int(70 * s)), words(rng, 6), font=font(int(26 * s)), fill=(15, 40, 90))
    d.line((left, int(110 * s), right, int(110 * s)), fill=(15, 40, 90), width=max(1, int(2 * s)))
    y = int(130 * s)
    body = int(13 * s)
    for section in range(1, 4):
        d.text((left, y), f"{section}. {words(rng, 3)}", font=font(int(17 * s)), fill=(15, 40, 90))
        y += int(30 * s)
        y = text_block(rng, d, left, y, right - left, y + int(rng.integers(120, 220) * s), body, 1.45)
        if section == 1:  # a ruled table with a shaded header and zebra rows
            rows, row_h = 8, int(24 * s)
            d.rectangle((left, y, right, y + row_h), fill=(220, 228, 240))
            for c in range(5):
                x0 = left + c * (right - left) // 5 + int(6 * s)
                d.text((x0, y + int(5 * s)), words(rng, 1), font=font(body), fill=(15, 40, 90))
            for r in range(rows):
                y0 = y + row_h * (r + 1)
                if r % 2:
                    d.rectangle((left, y0, right, y0 + row_h), fill=(245, 245, 245))
                for c in range(5):
                    x0 = left + c * (right - left) // 5 + int(6 * s)
                    d.text((x0, y0 + int(5 * s)), f"{rng.integers(100, 99999):,}", font=font(body), fill=(30, 30, 30))
            d.rectangle((left, y, right, y + row_h * (rows + 1)), outline=(90, 90, 90), width=max(1, int(s)))
            y += row_h * (rows + 1) + int(24 * s)
        if section == 2:  # a bar chart figure
            fh = int(200 * s)
            d.rectangle((left, y, right, y + fh), outline=(200, 200, 200))
            n = 12
            bw = (right - left) // (n * 2)
            for k in range(n):
                bh = int(rng.uniform(0.2, 0.9) * fh)
                x0 = left + bw // 2 + k * 2 * bw
                d.rectangle((x0, y + fh - bh, x0 + bw, y + fh), fill=(60 + 12 * k, 110, 190 - 8 * k))
            y += fh + int(24 * s)
    d.text((w // 2 - int(20 * s), h - int(60 * s)), f"- {seed % 40 + 1} -", font=font(int(12 * s)), fill=(80, 80, 80))
    return img


def scanned_page(w: int, h: int, seed: int, grey: bool) -> Image.Image:
    """A scanned page: slight skew, paper texture, toner noise near ink, dust, binding shadow.

    Like a scanner with mild background clean-up, the paper has low-amplitude
    texture but large areas still repeat, while everything near ink is noisy.
    """
    rng = np.random.default_rng(seed)
    page = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(page)
    s = w / 850
    left, right = int(85 * s), int(w - 85 * s)
    d.text((left, int(80 * s)), words(rng, 5).upper(), font=font(int(24 * s)), fill=0)
    text_block(rng, d, left, int(150 * s), right - left, h - int(120 * s), int(14 * s), 1.5, fill=0)
    page = page.rotate(0.4, resample=Image.Resampling.BICUBIC, fillcolor=255)
    a = np.asarray(page).astype(np.float32)
    near_ink = np.asarray(page.filter(ImageFilter.MinFilter(5))) < 250
    a = 18 + a * (226 / 255)
    a += near_ink * rng.normal(0, 8, a.shape).astype(np.float32)
    # paper texture: a few grey levels in blotches, so some blank tokens still match
    a += np.round(smooth_noise(rng, (h + 7) // 8, (w + 7) // 8, 24, 1.6)).repeat(8, 0).repeat(8, 1)[:h, :w]
    for _ in range(400):
        y0, x0 = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
        k = int(rng.integers(1, 5))
        a[y0:y0 + k, x0:x0 + k] -= rng.uniform(40, 160)
    edge = int(40 * s)
    a[:, :edge] -= np.linspace(90, 0, edge, dtype=np.float32)
    grey_img = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if grey:
        return Image.fromarray(grey_img, "L")
    tint = np.array([1.0, 0.975, 0.92], np.float32)  # yellowish paper in a colour scan
    return Image.fromarray(np.clip(grey_img[..., None] * tint, 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------- screens


def _window(rng, img, d, box, scale, title_color, picture=None):
    """An application window: title bar, sidebar list, optional picture, text pane, buttons."""
    x0, y0, x1, y1 = box
    bar = int(30 * scale)
    d.rectangle(box, fill=(250, 250, 250), outline=(180, 180, 180))
    d.rectangle((x0, y0, x1, y0 + bar), fill=title_color)
    d.text((x0 + int(12 * scale), y0 + int(7 * scale)), words(rng, 4), font=font(int(14 * scale)), fill="white")
    for k, c in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):
        cx = x1 - int((20 + 22 * k) * scale)
        d.ellipse((cx - int(6 * scale), y0 + int(9 * scale), cx + int(6 * scale), y0 + int(21 * scale)), fill=c)
    side = x0 + int(220 * scale)
    d.rectangle((x0 + 1, y0 + bar, side, y1 - 1), fill=(238, 240, 244))
    yy = y0 + bar + int(14 * scale)
    for k in range(int((y1 - yy) / (30 * scale)) - 1):
        if k == 2:
            d.rectangle((x0 + 1, yy - int(5 * scale), side, yy + int(21 * scale)), fill=(200, 215, 240))
        d.rectangle((x0 + int(14 * scale), yy, x0 + int(30 * scale), yy + int(16 * scale)), fill=(120, 140, 170))
        d.text((x0 + int(40 * scale), yy), words(rng, 2), font=font(int(13 * scale)), fill=(40, 40, 40))
        yy += int(30 * scale)
    top = y0 + bar + int(24 * scale)
    if picture is not None:
        img.paste(picture, (side + int(24 * scale), top))
        top += picture.size[1] + int(24 * scale)
    text_block(rng, d, side + int(24 * scale), top, x1 - side - int(48 * scale),
               y1 - int(70 * scale), int(13 * scale), 1.5)
    for k in range(2):
        bx = x1 - int((110 + 110 * k) * scale)
        d.rounded_rectangle((bx, y1 - int(50 * scale), bx + int(95 * scale), y1 - int(18 * scale)),
                            radius=int(6 * scale), fill=(40, 110, 220) if k == 0 else (225, 225, 225))


def desktop_screenshot(w: int, h: int, seed: int) -> Image.Image:
    """A desktop: gradient wallpaper, two overlapping windows (one with a photo), a taskbar."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    u = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    wall = (np.array([30, 60, 120], np.float32) * (1 - t) + np.array([120, 40, 110], np.float32) * t) * (1 - 0.4 * u)
    img = Image.fromarray(np.clip(wall, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    scale = h / 1080
    _window(rng, img, d, (int(0.06 * w), int(0.06 * h), int(0.62 * w), int(0.8 * h)), scale, (52, 73, 110))
    bx = (int(0.5 * w), int(0.2 * h), int(0.95 * w), int(0.88 * h))
    picture = photo(rng, int((bx[2] - bx[0]) * 0.45), int((bx[3] - bx[1]) * 0.35))
    _window(rng, img, d, bx, scale, (70, 70, 75), picture)
    tb = int(44 * scale)
    d.rectangle((0, h - tb, w, h), fill=(32, 32, 36))
    for k in range(8):
        x = int(16 * scale) + k * int(52 * scale)
        d.rounded_rectangle((x, h - tb + int(7 * scale), x + int(30 * scale), h - int(7 * scale)),
                            radius=int(5 * scale), fill=tuple(int(v) for v in rng.integers(60, 230, 3)))
    d.text((w - int(90 * scale), h - tb + int(13 * scale)), "14:07", font=font(int(15 * scale)), fill="white")
    return img


def phone_screen(w: int, h: int, seed: int) -> Image.Image:
    """A phone app: status bar, header, a photo card, a list of rows with avatars, a tab bar."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    s = w / 390
    d.text((int(24 * s), int(14 * s)), "9:41", font=font(int(15 * s)), fill="black")
    d.rectangle((0, int(50 * s), w, int(110 * s)), fill=(248, 248, 250))
    d.text((int(20 * s), int(64 * s)), words(rng, 2), font=font(int(26 * s)), fill="black")
    card = photo(rng, w - int(32 * s), int(210 * s))
    img.paste(card, (int(16 * s), int(124 * s)))
    y = int(350 * s)
    while y < h - int(150 * s):
        c = tuple(int(v) for v in rng.integers(80, 230, 3))
        d.ellipse((int(16 * s), y, int(60 * s), y + int(44 * s)), fill=c)
        d.text((int(72 * s), y + int(2 * s)), words(rng, 3), font=font(int(15 * s)), fill=(20, 20, 20))
        d.text((int(72 * s), y + int(24 * s)), words(rng, 6), font=font(int(12 * s)), fill=(120, 120, 120))
        d.line((int(72 * s), y + int(56 * s), w, y + int(56 * s)), fill=(225, 225, 225))
        y += int(64 * s)
    d.rectangle((0, h - int(84 * s), w, h), fill=(246, 246, 248))
    for k in range(5):
        cx = int((39 + 78 * k) * s)
        d.rounded_rectangle((cx - int(12 * s), h - int(70 * s), cx + int(12 * s), h - int(46 * s)),
                            radius=int(5 * s), fill=(0, 122, 255) if k == 0 else (150, 150, 155))
    return img


# ---------------------------------------------------------------- the corpus

# (name, size, drawer) for the end-to-end folder; two of each kind.
FOLDER_SPECS = [
    ("page_1700x2200_a", lambda: document_page(1700, 2200, 11)),
    ("page_1700x2200_b", lambda: document_page(1700, 2200, 12)),
    ("scan_2480x3508_grey", lambda: scanned_page(2480, 3508, 21, grey=True)),
    ("scan_2480x3508_colour", lambda: scanned_page(2480, 3508, 22, grey=False)),
    ("screen_1920x1080_a", lambda: desktop_screenshot(1920, 1080, 31)),
    ("screen_1920x1080_b", lambda: desktop_screenshot(1920, 1080, 32)),
    ("screen_2560x1440_a", lambda: desktop_screenshot(2560, 1440, 41)),
    ("screen_2560x1440_b", lambda: desktop_screenshot(2560, 1440, 42)),
    ("phone_1170x2532_a", lambda: phone_screen(1170, 2532, 51)),
    ("phone_1170x2532_b", lambda: phone_screen(1170, 2532, 52)),
]

# Single images for the coder micro-benchmarks (target 1 and 2).
CODER_SPECS = {
    "page_2048x2048": lambda: document_page(2048, 2048, 61),
    "screen_1920x1080": lambda: desktop_screenshot(1920, 1080, 62),
}

# One small screenshot for the start-up (first compress) measurement.
SMALL_SPEC = ("screen_800x600", lambda: desktop_screenshot(800, 600, 71))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # Pillow's default level, like most screenshot tools
    return buf.getvalue()


def _stamp_ok(stamp: Path) -> bool:
    try:
        return json.loads(stamp.read_text()).get("version") == GENERATOR_VERSION
    except (OSError, ValueError):
        return False


def make_inputs() -> dict:
    """Write every bench PNG once (cached by GENERATOR_VERSION); return their paths.

    Returns {"folder": Path, "files": [Path, ...], "coder": {name: Path}, "small": Path}.
    """
    FOLDER.mkdir(parents=True, exist_ok=True)
    coder_dir = WORK / "coder"
    coder_dir.mkdir(parents=True, exist_ok=True)
    stamp = WORK / "inputs.json"
    files = [FOLDER / f"{name}.png" for name, _ in FOLDER_SPECS]
    coder = {name: coder_dir / f"{name}.png" for name in CODER_SPECS}
    small = coder_dir / f"{SMALL_SPEC[0]}.png"
    if not (_stamp_ok(stamp) and all(p.exists() for p in [*files, *coder.values(), small])):
        for old in FOLDER.glob("*.png"):
            old.unlink()
        for (_, draw), path in zip(FOLDER_SPECS, files):
            path.write_bytes(_png(draw()))
        for name, draw in CODER_SPECS.items():
            coder[name].write_bytes(_png(draw()))
        small.write_bytes(_png(SMALL_SPEC[1]()))
        stamp.write_text(json.dumps({"version": GENERATOR_VERSION}))
    return {"folder": FOLDER, "files": files, "coder": coder, "small": small}


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    made = make_inputs()
    print(f"inputs ready in {time.perf_counter() - start:.1f} s")
    for p in [*made["files"], *made["coder"].values(), made["small"]]:
        with Image.open(p) as im:
            print(f"{p.name:32s} {im.mode:4s} {im.size[0]}x{im.size[1]} {p.stat().st_size / 1e6:6.2f} MB")
