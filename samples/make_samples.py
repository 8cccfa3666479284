"""Generate the sample images and the HF-format Parquet shipped in ``samples/``.

pixelprune drops visual tokens whose pixels repeat a neighbour's, so it needs
inputs that show both ends of the spectrum: rendered documents, slides and GUI
screens with large, exactly flat regions (many 32x32 tokens are pixel-identical
to a neighbour), and a noisy photo-like image where almost nothing repeats.
Everything is drawn here with Pillow and numpy from fixed seeds, so the files
carry no licensing baggage and rerunning the script reproduces them byte for
byte::

    python samples/make_samples.py

Besides the image files it writes ``samples.parquet`` in the Hugging Face
``datasets`` Image layout (``image`` = struct<bytes, path>, plus ``name`` and
``kind``) in row groups of 4 rows, for testing the Parquet readers.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

OUT_DIR = Path(__file__).resolve().parent
PARQUET_NAME = "samples.parquet"
ROW_GROUP_SIZE = 4
TOKEN = 32  # tile size used for the redundancy summary printed by main()

WORDS = (
    "the of and to in is that for it as with was on be by this are from at an "
    "or which data model image token visual layout page section report value "
    "result method system table figure document process input output review "
    "analysis summary budget quarter region policy account service customer "
    "network update record number account balance total invoice payment date "
    "project team schedule meeting design window screen button option setting "
    "profile message status version release feature support request response"
).split()

_FONTS: dict[int, ImageFont.FreeTypeFont] = {}


# --------------------------------------------------------------------------
# small drawing helpers
# --------------------------------------------------------------------------


def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled default font at ``size`` pixels (cached)."""
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def phrase(rng: np.random.Generator, n_words: int, capital: bool = True) -> str:
    """A pseudo-random run of ``n_words`` vocabulary words."""
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), n_words)]
    text = " ".join(words)
    return text[:1].upper() + text[1:] if capital else text


def line_of_width(rng: np.random.Generator, draw: ImageDraw.ImageDraw,
                  fnt: ImageFont.FreeTypeFont, max_width: float) -> str:
    """Words appended until the next one would overflow ``max_width`` pixels."""
    text = ""
    while True:
        word = WORDS[int(rng.integers(0, len(WORDS)))]
        candidate = f"{text} {word}" if text else word
        if draw.textlength(candidate, font=fnt) > max_width:
            return text
        text = candidate


def paragraph(rng: np.random.Generator, draw: ImageDraw.ImageDraw, x: int,
              y: int, width: int, n_lines: int, fnt: ImageFont.FreeTypeFont,
              line_height: int, fill=0) -> int:
    """Draw a left-aligned paragraph; the last line is short. Returns next y."""
    for i in range(n_lines):
        limit = width if i < n_lines - 1 else width * rng.uniform(0.25, 0.7)
        text = line_of_width(rng, draw, fnt, limit)
        if i == 0:
            text = text[:1].upper() + text[1:]
        if i == n_lines - 1:
            text += "."
        draw.text((x, y), text, font=fnt, fill=fill)
        y += line_height
    return y


def text_right(draw: ImageDraw.ImageDraw, x_right: int, y: int, text: str,
               fnt: ImageFont.FreeTypeFont, fill) -> None:
    """Draw ``text`` so that it ends at ``x_right``."""
    draw.text((x_right - draw.textlength(text, font=fnt), y), text, font=fnt, fill=fill)


def text_center(draw: ImageDraw.ImageDraw, cx: float, y: int, text: str,
                fnt: ImageFont.FreeTypeFont, fill) -> None:
    """Draw ``text`` horizontally centred on ``cx``."""
    draw.text((cx - draw.textlength(text, font=fnt) / 2, y), text, font=fnt, fill=fill)


# --------------------------------------------------------------------------
# documents
# --------------------------------------------------------------------------


def draw_text_page() -> Image.Image:
    """A white A4-ish page: heading, byline, sections of body text, page number."""
    rng = np.random.default_rng(101)
    img = Image.new("RGB", (850, 1100), "white")
    d = ImageDraw.Draw(img)
    left, right, bottom = 90, 760, 1000
    d.text((left, 80), "Visual Token Redundancy in Rendered Pages", font=font(28), fill="black")
    d.text((left, 122), "Technical note 7 - internal draft", font=font(15), fill=(90, 90, 90))
    d.line((left, 150, right, 150), fill=(0, 0, 0), width=1)
    headings = ["Introduction", "Related work", "Method", "Results", "Discussion"]
    y, section = 175, 1
    body, lh = font(15), 22
    while y < bottom - 120:
        if (rng.random() < 0.3 or section == 1) and section <= len(headings):
            d.text((left, y), f"{section}. {headings[section - 1]}", font=font(19), fill="black")
            y += 34
            section += 1
        n_lines = int(rng.integers(3, 8))
        n_lines = min(n_lines, (bottom - y) // lh)
        y = paragraph(rng, d, left, y, right - left, n_lines, body, lh) + 14
    text_center(d, 425, 1045, "- 3 -", font(14), (60, 60, 60))
    return img


def draw_table() -> Image.Image:
    """A ruled table with a shaded header, zebra rows and right-aligned numbers."""
    rng = np.random.default_rng(102)
    img = Image.new("RGB", (1000, 700), "white")
    d = ImageDraw.Draw(img)
    d.text((40, 28), "Table 2. Quarterly revenue by region and product (kUSD)",
           font=font(22), fill="black")
    cols = ["Region", "Product", "Q1", "Q2", "Q3", "Q4", "Total"]
    edges = [40, 190, 390, 500, 610, 720, 830, 960]
    top, row_h, n_rows = 80, 38, 14
    regions = ["North", "South", "East", "West", "Central", "Overseas", "Online"]
    products = ["Licences", "Support", "Hardware", "Training", "Consulting"]
    bottom = top + row_h * (n_rows + 1)
    d.rectangle((edges[0], top, edges[-1], top + row_h), fill=(221, 229, 240))
    for r in range(n_rows):
        if r % 2 == 1:
            y0 = top + row_h * (r + 1)
            d.rectangle((edges[0], y0, edges[-1], y0 + row_h), fill=(246, 246, 246))
    hdr, cell = font(17), font(16)
    for c, name in enumerate(cols):
        if c < 2:
            d.text((edges[c] + 10, top + 10), name, font=hdr, fill="black")
        else:
            text_right(d, edges[c + 1] - 10, top + 10, name, hdr, "black")
    for r in range(n_rows):
        y = top + row_h * (r + 1) + 10
        quarters = rng.integers(40, 990, 4)
        values = [regions[r // 2], products[int(rng.integers(0, len(products)))]]
        values += [f"{q:,}" for q in quarters] + [f"{quarters.sum():,}"]
        for c, value in enumerate(values):
            if c < 2:
                d.text((edges[c] + 10, y), value, font=cell, fill=(20, 20, 20))
            else:
                text_right(d, edges[c + 1] - 10, y, value, cell, (20, 20, 20))
    for r in range(n_rows + 2):
        y = top + row_h * r
        d.line((edges[0], y, edges[-1], y), fill=(110, 110, 110), width=2 if r in (0, 1) else 1)
    for x in edges:
        d.line((x, top, x, bottom), fill=(110, 110, 110), width=1)
    d.text((40, bottom + 14), "Source: internal ledger, unaudited. Totals may not add up due to rounding.",
           font=font(14), fill=(90, 90, 90))
    return img


def _field(d: ImageDraw.ImageDraw, x0: int, y0: int, x1: int, label: str,
           value: str = "", height: int = 36) -> None:
    """A labelled input box, optionally filled in with ``value``."""
    d.text((x0, y0), label, font=font(14), fill=(60, 60, 60))
    d.rectangle((x0, y0 + 20, x1, y0 + 20 + height), outline=(70, 70, 70), width=1)
    if value:
        d.text((x0 + 8, y0 + 28), value, font=font(18), fill=(20, 40, 140))


def _checkbox(d: ImageDraw.ImageDraw, x: int, y: int, label: str, checked: bool) -> None:
    """An 18 px checkbox with a label; a checked box gets an X."""
    d.rectangle((x, y, x + 18, y + 18), outline=(50, 50, 50), width=2)
    if checked:
        d.line((x + 4, y + 4, x + 14, y + 14), fill=(20, 40, 140), width=3)
        d.line((x + 4, y + 14, x + 14, y + 4), fill=(20, 40, 140), width=3)
    d.text((x + 28, y), label, font=font(16), fill="black")


def draw_form() -> Image.Image:
    """A partly filled-in application form with boxes, checkboxes and signature."""
    img = Image.new("RGB", (800, 1000), "white")
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 800, 70), fill=(40, 60, 90))
    text_center(d, 400, 20, "MEMBERSHIP APPLICATION", font(28), "white")
    d.text((50, 90), "Please complete all fields in block capitals and sign at the bottom.",
           font=font(15), fill=(60, 60, 60))
    _field(d, 50, 130, 750, "Full name", "JANE A. EXAMPLE")
    _field(d, 50, 200, 390, "Date of birth (DD/MM/YYYY)", "14/02/1988")
    _field(d, 410, 200, 750, "Phone number")
    _field(d, 50, 270, 750, "Street address", "12 QUEEN STREET, FLAT 3", height=70)
    _field(d, 50, 374, 300, "City", "LEEDS")
    _field(d, 320, 374, 500, "Postcode", "LS1 4AB")
    _field(d, 520, 374, 750, "Country")
    d.text((50, 460), "Preferred contact method", font=font(18), fill="black")
    for i, (label, on) in enumerate([("E-mail", True), ("Telephone", False), ("Post", False)]):
        _checkbox(d, 50 + 220 * i, 494, label, on)
    d.text((50, 550), "Areas of interest (tick all that apply)", font=font(18), fill="black")
    interests = ["Workshops", "Newsletter", "Volunteering", "Events", "Research", "Mentoring"]
    ticks = [True, True, False, False, True, False]
    for i, (label, on) in enumerate(zip(interests, ticks)):
        _checkbox(d, 50 + 240 * (i % 3), 586 + 40 * (i // 3), label, on)
    _field(d, 50, 680, 750, "Additional comments", height=120)
    d.text((50, 840), "I confirm that the information given is correct.", font=font(15), fill=(60, 60, 60))
    d.line((50, 920, 400, 920), fill="black", width=1)
    d.line((480, 920, 750, 920), fill="black", width=1)
    d.text((50, 926), "Signature", font=font(14), fill=(60, 60, 60))
    d.text((480, 926), "Date", font=font(14), fill=(60, 60, 60))
    d.line([(70, 910), (110, 885), (130, 912), (160, 890), (200, 905), (260, 893)],
           fill=(20, 40, 140), width=2)
    d.text((490, 890), "03/05/2024", font=font(18), fill=(20, 40, 140))
    d.text((50, 965), "Form M-12 rev. 4", font=font(12), fill=(120, 120, 120))
    return img


def _receipt_outline(x0: int, y0: int, x1: int, y1: int, tooth: int = 10) -> list[tuple[int, int]]:
    """Polygon of a receipt slip with a torn, zigzag bottom edge."""
    points = [(x0, y0), (x1, y0), (x1, y1)]
    x, down = x1, False
    while x > x0:
        x = max(x0, x - tooth)
        points.append((x, y1 + (tooth if down else 0)))
        down = not down
    points.append((x0, y0))
    return points


def draw_receipt_rgba() -> Image.Image:
    """A till receipt with a soft shadow on a fully transparent background."""
    rng = np.random.default_rng(109)
    w, h = 500, 900
    x0, y0, x1, y1 = 60, 30, 440, 850
    outline = _receipt_outline(x0, y0, x1, y1)
    shadow = Image.new("L", (w, h), 0)
    ImageDraw.Draw(shadow).polygon([(x + 6, y + 8) for x, y in outline], fill=110)
    shadow = shadow.filter(ImageFilter.GaussianBlur(6))
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    img.putalpha(shadow)  # black shadow whose opacity is the blurred mask
    paper = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(paper)
    d.polygon(outline, fill=(252, 251, 246, 255))
    ink = (35, 35, 35, 255)
    text_center(d, 250, 60, "CORNER GROCERY", font(28), ink)
    text_center(d, 250, 98, "41 Mill Lane - Tel 0113 496 0000", font(14), ink)
    text_center(d, 250, 118, "VAT no. GB 123 4567 89", font(14), ink)
    d.text((85, 150), "03/05/2024  14:27      Till 2", font=font(15), fill=ink)
    dashes = "- " * 30
    d.text((85, 175), dashes, font=font(15), fill=ink)
    items = ["Whole milk 2L", "Sourdough loaf", "Free range eggs", "Apples (1.2kg)",
             "Cheddar 400g", "Coffee beans", "Tomatoes", "Pasta 500g", "Olive oil",
             "Dish soap", "Bananas", "Yoghurt x4", "Orange juice"]
    y, total = 200, 0
    for item in items:
        qty = int(rng.integers(1, 3))
        pence = int(rng.integers(45, 650)) * qty
        total += pence
        label = f"{qty} x {item}" if qty > 1 else item
        d.text((85, y), label, font=font(16), fill=ink)
        text_right(d, 415, y, f"{pence / 100:.2f}", font(16), ink)
        y += 28
    d.text((85, y), dashes, font=font(15), fill=ink)
    y += 26
    vat = round(total / 6)
    for label, pence in [("Subtotal", total - vat), ("VAT 20%", vat)]:
        d.text((85, y), label, font=font(16), fill=ink)
        text_right(d, 415, y, f"{pence / 100:.2f}", font(16), ink)
        y += 28
    d.text((85, y + 4), "TOTAL", font=font(24), fill=ink)
    text_right(d, 415, y + 4, f"GBP {total / 100:.2f}", font(24), ink)
    y += 46
    d.text((85, y), "Card ************4421        Contactless", font=font(14), fill=ink)
    y += 40
    text_center(d, 250, y, "THANK YOU FOR SHOPPING", font(18), ink)
    y += 40
    x = 110
    while x < 390:  # a barcode of random bar widths
        bar = int(rng.integers(1, 5))
        d.rectangle((x, y, x + bar - 1, y + 60), fill=ink)
        x += bar + int(rng.integers(1, 4))
    text_center(d, 250, y + 66, "0 41234 56789 2", font(14), ink)
    return Image.alpha_composite(img, paper)


def draw_scan_gray() -> Image.Image:
    """A greyscale letter that looks scanned: slight skew, paper tone, toner noise,
    dust specks and a shadow strip at the binding edge.

    Like a scanner with background removal, the bare paper stays one exact grey
    level, so blank areas remain pixel-identical; noise sits near the ink.
    """
    rng = np.random.default_rng(110)
    w, h = 850, 1100
    page = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(page)
    d.text((90, 80), "NORTHFIELD HOUSING TRUST", font=font(26), fill=0)
    d.text((90, 116), "2 Station Road - Northfield - NF3 8QT", font=font(14), fill=0)
    d.line((90, 140, 760, 140), fill=0, width=2)
    for i, line in enumerate(["Ms J. Example", "12 Queen Street, Flat 3", "Leeds LS1 4AB"]):
        d.text((90, 180 + 22 * i), line, font=font(16), fill=0)
    text_right(d, 760, 180, "3 May 2024", font(16), 0)
    d.text((90, 280), "Re: annual tenancy review", font=font(18), fill=0)
    d.text((90, 320), "Dear Ms Example,", font=font(16), fill=0)
    y = 356
    for _ in range(4):
        y = paragraph(rng, d, 90, y, 670, int(rng.integers(3, 6)), font(16), 23, fill=0) + 16
    d.text((90, y + 10), "Yours sincerely,", font=font(16), fill=0)
    d.line([(100, y + 80), (130, y + 52), (150, y + 78), (185, y + 55), (240, y + 70)], fill=0, width=2)
    d.text((90, y + 100), "R. Officer, Tenancy Services", font=font(16), fill=0)

    page = page.rotate(0.35, resample=Image.BICUBIC, fillcolor=255)
    near_ink = np.asarray(page.filter(ImageFilter.MinFilter(5))) < 250
    a = np.asarray(page).astype(np.float32)
    a = 14 + a * (230 / 255)  # ink -> ~14, paper -> 244
    a += near_ink * rng.normal(0, 7, a.shape)
    for _ in range(140):  # dust specks of 1-3 px
        y0, x0 = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
        s = int(rng.integers(1, 4))
        a[y0:y0 + s, x0:x0 + s] -= rng.uniform(40, 160)
    a[:, :18] -= np.linspace(90, 0, 18, dtype=np.float32)  # binding-edge shadow
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")


# --------------------------------------------------------------------------
# slides, GUIs, charts
# --------------------------------------------------------------------------


def draw_slide() -> Image.Image:
    """A 16:9 slide: coloured title bar, bullets, a box-and-arrow diagram, footer."""
    img = Image.new("RGB", (1280, 720), (245, 247, 250))
    d = ImageDraw.Draw(img)
    navy, accent = (31, 78, 121), (237, 125, 49)
    d.rectangle((0, 0, 1280, 110), fill=navy)
    d.rectangle((0, 110, 1280, 116), fill=accent)
    d.text((60, 30), "Why prune visual tokens?", font=font(46), fill="white")
    bullets = [
        "Screens and pages are mostly flat colour",
        "Identical 32x32 patches add no information",
        "Dropping them cuts encoder cost",
        "Positions are kept, so layout survives",
        "No retraining of the language model",
    ]
    for i, text in enumerate(bullets):
        y = 170 + 78 * i
        d.ellipse((70, y + 10, 84, y + 24), fill=navy)
        d.text((104, y), text, font=font(30), fill=(40, 40, 40))
    boxes = [("Image", 220), ("Dedup", 360), ("Encoder", 500)]
    for label, y in boxes:
        d.rounded_rectangle((900, y, 1160, y + 80), radius=12, fill="white", outline=navy, width=3)
        text_center(d, 1030, y + 24, label, font(28), navy)
    for (_, y), (_, y_next) in itertools.pairwise(boxes):
        d.line((1030, y + 80, 1030, y_next - 8), fill=accent, width=4)
        d.polygon([(1020, y_next - 14), (1040, y_next - 14), (1030, y_next)], fill=accent)
    d.line((60, 660, 1220, 660), fill=(200, 205, 212), width=1)
    d.text((60, 674), "pixelprune - project overview", font=font(18), fill=(110, 110, 120))
    text_right(d, 1220, 674, "4 / 12", font(18), (110, 110, 120))
    return img


def draw_gui_window() -> Image.Image:
    """A desktop note-taking app: title bar, toolbar, sidebar, editor, status bar."""
    rng = np.random.default_rng(105)
    w, h = 1280, 800
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    # title bar with traffic-light buttons
    d.rectangle((0, 0, w, 36), fill=(232, 232, 232))
    for i, colour in enumerate([(255, 95, 87), (254, 188, 46), (40, 200, 64)]):
        d.ellipse((14 + 22 * i, 12, 26 + 22 * i, 24), fill=colour)
    text_center(d, w / 2, 9, "Notes - Quarterly planning.md", font(16), (50, 50, 50))
    # toolbar with flat buttons and a search field
    d.rectangle((0, 36, w, 84), fill=(248, 248, 248))
    d.line((0, 84, w, 84), fill=(210, 210, 210))
    x = 14
    for label in ["New", "Open", "Save", "Print", "Share", "Export"]:
        bw = int(d.textlength(label, font=font(15))) + 28
        d.rounded_rectangle((x, 46, x + bw, 74), radius=5, fill="white", outline=(200, 200, 200))
        d.text((x + 14, 51), label, font=font(15), fill=(40, 40, 40))
        x += bw + 8
    d.rounded_rectangle((980, 46, 1266, 74), radius=14, fill="white", outline=(200, 200, 200))
    d.ellipse((994, 53, 1006, 65), outline=(140, 140, 140), width=2)
    d.line((1005, 64, 1010, 69), fill=(140, 140, 140), width=2)
    d.text((1018, 51), "Search notes", font=font(15), fill=(160, 160, 160))
    # sidebar
    d.rectangle((0, 85, 260, 775), fill=(242, 244, 247))
    d.line((260, 85, 260, 775), fill=(215, 215, 215))
    d.text((20, 100), "LIBRARY", font=font(13), fill=(130, 130, 130))
    items = ["Inbox", "Quarterly planning", "Meeting notes", "Design review", "Roadmap",
             "Hiring", "Reading list", "Archive", "Trash"]
    for i, label in enumerate(items):
        y = 126 + 34 * i
        if i == 1:
            d.rectangle((8, y - 4, 252, y + 26), fill=(208, 224, 246))
        d.rectangle((22, y + 3, 36, y + 17), outline=(110, 120, 140), width=2)
        d.text((48, y), label, font=font(16), fill=(30, 30, 30))
    d.text((20, 450), "TAGS", font=font(13), fill=(130, 130, 130))
    for i, (tag, colour) in enumerate([("work", (66, 133, 244)), ("ideas", (52, 168, 83)),
                                       ("urgent", (234, 67, 53))]):
        y = 476 + 30 * i
        d.ellipse((24, y + 4, 36, y + 16), fill=colour)
        d.text((48, y), tag, font=font(16), fill=(30, 30, 30))
    # content pane
    d.text((300, 110), "Quarterly planning", font=font(30), fill=(20, 20, 20))
    d.text((300, 152), "Edited 2 hours ago - 684 words", font=font(14), fill=(140, 140, 140))
    y = 190
    for _ in range(3):
        y = paragraph(rng, d, 300, y, 900, int(rng.integers(2, 5)), font(17), 26, fill=(40, 40, 40)) + 16
    d.text((300, y), "Open items", font=font(22), fill=(20, 20, 20))
    y += 38
    for _ in range(5):
        d.rectangle((304, y + 4, 318, y + 18), outline=(90, 90, 90), width=2)
        d.text((332, y), phrase(rng, int(rng.integers(4, 9))), font=font(17), fill=(40, 40, 40))
        y += 30
    # status bar
    d.rectangle((0, 776, w, h), fill=(232, 232, 232))
    d.text((12, 780), "Ready", font=font(13), fill=(80, 80, 80))
    text_right(d, w - 12, 780, "Ln 12, Col 4    UTF-8    Markdown", font(13), (80, 80, 80))
    return img


def draw_mobile_screen() -> Image.Image:
    """A phone inbox: status bar, app bar, message list with avatars, FAB, nav bar."""
    rng = np.random.default_rng(106)
    w, h = 590, 1280
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    blue, dark_blue = (33, 110, 200), (22, 84, 160)
    d.rectangle((0, 0, w, 48), fill=dark_blue)
    d.text((24, 12), "9:41", font=font(20), fill="white")
    for i in range(4):  # signal bars
        d.rectangle((470 + 8 * i, 34 - 5 * i, 475 + 8 * i, 36), fill="white")
    d.rectangle((512, 16, 552, 34), outline="white", width=2)
    d.rectangle((516, 20, 540, 30), fill="white")
    d.rectangle((553, 21, 556, 29), fill="white")
    d.rectangle((0, 48, w, 160), fill=blue)
    for i in range(3):  # hamburger menu
        d.rectangle((28, 88 + 11 * i, 58, 91 + 11 * i), fill="white")
    d.text((86, 82), "Inbox", font=font(34), fill="white")
    d.ellipse((500, 84, 526, 110), outline="white", width=3)
    d.line((522, 106, 536, 120), fill="white", width=4)
    palette = [(234, 67, 53), (52, 168, 83), (251, 188, 5), (66, 133, 244),
               (171, 71, 188), (0, 172, 193), (255, 112, 67), (92, 107, 192)]
    names = ["Alice Martin", "Bob Chen", "Carla Diaz", "Deepak Rao", "Eva Novak",
             "Farid Haddad", "Grace Kim", "Hugo Laurent"]
    for i, name in enumerate(names):
        y = 160 + 124 * i
        colour = palette[int(rng.integers(0, len(palette)))]
        d.ellipse((24, y + 24, 100, y + 100), fill=colour)
        text_center(d, 62, y + 44, name[0], font(34), "white")
        d.text((124, y + 26), name, font=font(24), fill=(25, 25, 25))
        text_right(d, 566, y + 30, f"{int(rng.integers(7, 12))}:{int(rng.integers(0, 60)):02d}",
                   font(18), (120, 120, 120))
        d.text((124, y + 62), phrase(rng, int(rng.integers(4, 7))), font=font(19), fill=(110, 110, 110))
        d.line((124, y + 123, w, y + 123), fill=(226, 226, 226))
    d.ellipse((470, 1040, 560, 1130), fill=(255, 112, 67))
    d.rectangle((512, 1060, 518, 1110), fill="white")
    d.rectangle((490, 1082, 540, 1088), fill="white")
    d.rectangle((0, 1160, w, h), fill=(248, 248, 248))
    d.line((0, 1160, w, 1160), fill=(220, 220, 220))
    for i, label in enumerate(["Mail", "Chat", "Spaces", "Meet"]):
        cx = 74 + 147 * i
        colour = blue if i == 0 else (120, 120, 120)
        d.rounded_rectangle((cx - 16, 1180, cx + 16, 1206), radius=6, outline=colour, width=3)
        text_center(d, cx, 1218, label, font(17), colour)
    return img


def draw_chart() -> Image.Image:
    """Grouped bars plus a target line, with gridlines, ticks, axis titles, legend."""
    rng = np.random.default_rng(107)
    img = Image.new("RGB", (1000, 650), "white")
    d = ImageDraw.Draw(img)
    d.text((90, 22), "Monthly sales by channel, 2023", font=font(24), fill=(30, 30, 30))
    left, right, top, bottom = 90, 810, 80, 560
    y_max, step = 500, 100
    scale = (bottom - top) / y_max
    for v in range(0, y_max + 1, step):
        y = bottom - v * scale
        d.line((left, y, right, y), fill=(225, 225, 225))
        text_right(d, left - 10, int(y) - 8, str(v), font(15), (80, 80, 80))
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    series = [("Online", (68, 114, 196), rng.integers(150, 420, 12)),
              ("Retail", (237, 125, 49), rng.integers(100, 330, 12))]
    slot = (right - left) / len(months)
    for m, month in enumerate(months):
        x = left + slot * m
        for s, (_, colour, values) in enumerate(series):
            bx = int(x + 10 + s * 20)
            d.rectangle((bx, int(bottom - values[m] * scale), bx + 18, bottom), fill=colour)
        text_center(d, x + slot / 2, bottom + 10, month, font(15), (80, 80, 80))
    target = np.linspace(220, 380, 12) + rng.normal(0, 10, 12)
    points = [(left + slot * (m + 0.5), bottom - t * scale) for m, t in enumerate(target)]
    green = (46, 140, 80)
    d.line(points, fill=green, width=3)
    for px, py in points:
        d.ellipse((px - 5, py - 5, px + 5, py + 5), fill="white", outline=green, width=2)
    d.line((left, top, left, bottom), fill=(30, 30, 30), width=2)
    d.line((left, bottom, right, bottom), fill=(30, 30, 30), width=2)
    text_center(d, (left + right) / 2, 600, "Month", font(17), (50, 50, 50))
    label = Image.new("RGB", (200, 24), "white")
    text_center(ImageDraw.Draw(label), 100, 2, "Units sold", font(17), (50, 50, 50))
    img.paste(label.rotate(90, expand=True), (22, (top + bottom) // 2 - 100))
    d.rectangle((830, 90, 985, 200), outline=(200, 200, 200))
    entries = [(name, colour) for name, colour, _ in series] + [("Target", green)]
    for i, (name, colour) in enumerate(entries):
        y = 104 + 32 * i
        if name == "Target":
            d.line((846, y + 9, 874, y + 9), fill=colour, width=3)
        else:
            d.rectangle((846, y, 864, y + 18), fill=colour)
        d.text((884, y), name, font=font(16), fill=(40, 40, 40))
    return img


# --------------------------------------------------------------------------
# photo-like image
# --------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bicubically."""
    coarse = rng.uniform(0, 255, (cells, cells * w // h + 1)).astype(np.uint8)
    big = Image.fromarray(coarse, mode="L").resize((w, h), Image.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 127.5 - 1


def draw_photo() -> Image.Image:
    """A landscape-like scene: sky gradient, sun glow, hills, lake, trees, grain."""
    rng = np.random.default_rng(108)
    w, h = 800, 600
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (yy / h)[..., None]
    img = (1 - t) * np.array([70, 120, 200], np.float32) + t * np.array([215, 225, 235], np.float32)
    sun = np.exp(-((xx - 600) ** 2 + (yy - 140) ** 2) / (2 * 70.0 ** 2))[..., None]
    img += sun * np.array([90, 70, 20], np.float32)
    img += _smooth_noise(rng, h, w, 6)[..., None] * 14  # clouds-ish mottling
    for base, amp, colour, seed_shift in [(330, 40, (70, 110, 70), 0.0),
                                          (390, 30, (50, 95, 45), 1.7),
                                          (440, 25, (40, 80, 35), 3.1)]:
        ridge = base + amp * np.sin(xx[0] / 90 + seed_shift) + 0.5 * amp * np.sin(xx[0] / 37 + 2 * seed_shift)
        mask = (yy > ridge[None, :])[..., None]
        shade = 1 - 0.25 * np.clip((yy - ridge[None, :]) / 150, 0, 1)[..., None]
        img = np.where(mask, np.array(colour, np.float32) * shade, img)
    lake = (yy > 500)[..., None]
    ripple = np.sin(yy / 3 + np.sin(xx / 40) * 2)[..., None] * 10
    img = np.where(lake, img[::-1] * 0.6 + np.array([20, 40, 70], np.float32) + ripple, img)
    img += _smooth_noise(rng, h, w, 40)[..., None] * 12  # foliage texture
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB")
    d = ImageDraw.Draw(pil)
    for _ in range(14):  # trees along the far shore
        x = int(rng.integers(20, 780))
        y = int(rng.integers(440, 490))
        size = int(rng.integers(18, 40))
        d.rectangle((x - 2, y, x + 2, y + size // 2), fill=(60, 40, 25))
        d.ellipse((x - size // 2, y - size, x + size // 2, y + 4), fill=(30, 70 + size, 30))
    pil = pil.filter(ImageFilter.GaussianBlur(1.2))
    a = np.asarray(pil, dtype=np.float32) + rng.normal(0, 6, (h, w, 3))  # sensor grain
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="RGB")


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

SAMPLES = [  # (file name, kind, draw function)
    ("text_page.png", "document", draw_text_page),
    ("table.png", "document", draw_table),
    ("form.png", "document", draw_form),
    ("slide.png", "slide", draw_slide),
    ("gui_window.png", "gui", draw_gui_window),
    ("mobile_screen.png", "gui", draw_mobile_screen),
    ("chart.png", "chart", draw_chart),
    ("photo.jpg", "photo", draw_photo),
    ("receipt_rgba.png", "document", draw_receipt_rgba),
    ("scan_gray.png", "document", draw_scan_gray),
]

HF_METADATA = {"info": {"features": {
    "image": {"_type": "Image"},
    "name": {"dtype": "string", "_type": "Value"},
    "kind": {"dtype": "string", "_type": "Value"},
}}}


def encode(img: Image.Image, name: str) -> bytes:
    """Encode deterministically: PNG (optimised) or JPEG quality 90."""
    buf = io.BytesIO()
    if name.endswith(".jpg"):
        img.save(buf, format="JPEG", quality=90)
    else:
        img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def duplicate_token_share(img: Image.Image, tile: int = TOKEN) -> float:
    """Share of full ``tile`` x ``tile`` tiles identical to their left or upper neighbour."""
    a = np.asarray(img)
    rows, cols = a.shape[0] // tile, a.shape[1] // tile
    tiles = a[:rows * tile, :cols * tile].reshape(rows, tile, cols, tile, -1).swapaxes(1, 2)
    same = np.zeros((rows, cols), bool)
    same[:, 1:] |= (tiles[:, 1:] == tiles[:, :-1]).all(axis=(2, 3, 4))
    same[1:, :] |= (tiles[1:] == tiles[:-1]).all(axis=(2, 3, 4))
    return float(same.mean())


def write_parquet(rows: list[tuple[str, str, bytes]], path: Path) -> None:
    """Write the HF Image-format Parquet, via `datasets` if available, else pyarrow."""
    images = [{"bytes": data, "path": name} for name, _, data in rows]
    names = [name for name, _, _ in rows]
    kinds = [kind for _, kind, _ in rows]
    try:
        import datasets
    except ImportError:
        datasets = None
    if datasets is not None:
        datasets.disable_progress_bars()
        ds = datasets.Dataset.from_dict({"image": images, "name": names, "kind": kinds})
        ds = ds.cast_column("image", datasets.Image())
        ds.to_parquet(str(path), batch_size=ROW_GROUP_SIZE)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("image", image_type), ("name", pa.string()), ("kind", pa.string())],
                       metadata={b"huggingface": json.dumps(HF_METADATA).encode()})
    table = pa.table({"image": pa.array(images, type=image_type),
                      "name": pa.array(names, pa.string()),
                      "kind": pa.array(kinds, pa.string())}, schema=schema)
    pq.write_table(table, path, row_group_size=ROW_GROUP_SIZE)


def main() -> None:
    """Draw every sample, write the files and the Parquet, print a summary."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, kind, draw in SAMPLES:
        img = draw()
        data = encode(img, name)
        (OUT_DIR / name).write_bytes(data)
        rows.append((name, kind, data))
        print(f"{name:18s} {kind:9s} {img.mode:4s} {img.width:4d}x{img.height:<4d} "
              f"{len(data) / 1024:7.1f} KiB  dup {TOKEN}px tiles {duplicate_token_share(img):6.1%}")
    write_parquet(rows, OUT_DIR / PARQUET_NAME)
    print(f"{PARQUET_NAME:18s} {len(rows)} rows, {(OUT_DIR / PARQUET_NAME).stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
