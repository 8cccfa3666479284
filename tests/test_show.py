"""`pixelprune show` pictures: overlay pixels, sizes, side-by-side panels, rows, tables, contact sheets."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pixelprune_cli.coding import coder, tokens
from pixelprune_cli.coding.backends import resize_for_model
from pixelprune_cli.coding.pipeline import CodingConfig, code_image
from pixelprune_cli.coding.preprocess import decode_image
from pixelprune_cli.coding.presets import PRESETS
from pixelprune_cli.errors import ConfigError, InputError
from pixelprune_cli.pictures import contact_sheet, show, token_overlay

from conftest import ROOT

PRESET = PRESETS["qwen3-vl"]
TS = PRESET.token_size
TH, TW = 4, 5
WHITE, GREY96, RED = (255, 255, 255), (96, 96, 96), (200, 30, 40)


def png_roundtrip(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    assert decoded.format == "PNG"
    return decoded


def token(array: np.ndarray, p: int, interior: bool = True) -> np.ndarray:
    """Pixels of token p (flat index); interior leaves out the first row and column, where the grid is drawn."""
    y, x = (p // TW) * TS, (p % TW) * TS
    edge = 1 if interior else 0
    return array[y + edge:y + TS, x + edge:x + TS]


@pytest.fixture(scope="module")
def scene():
    """A 4x5-token image with textured kept tokens and flat dropped ones (white, grey 96, red)."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(TH * TS, TW * TS, 3), dtype=np.uint8)
    ref = np.arange(TH * TW, dtype=np.int32)
    for p, colour in ((6, WHITE), (7, WHITE), (12, GREY96), (13, GREY96), (17, RED), (18, RED)):
        image[(p // TW) * TS:(p // TW + 1) * TS, (p % TW) * TS:(p % TW + 1) * TS] = colour
    ref[7], ref[13], ref[18] = 6, 12, 17  # each second flat token is rebuilt from the first
    return image, ref


CAPTION = "qwen3-vl | pred_2d | max | tau=0 | kept 17/20 tokens | -15.0%"


def test_overlay_decodes_as_png_with_the_image_width_and_the_caption_bar_below(scene):
    image, ref = scene
    picture = png_roundtrip(token_overlay.render_overlay(image, ref, TS, CAPTION))
    bar = token_overlay.caption_bar_height(CAPTION, image.shape[1])
    assert picture.size == (image.shape[1], image.shape[0] + bar)
    assert bar > 10
    text = np.asarray(picture.convert("L"))[image.shape[0]:]
    assert (text < 128).sum() > 50  # the caption is drawn, dark on white


def test_dropped_token_interior_is_greyed_and_kept_token_interior_is_unchanged(scene):
    image, ref = scene
    overlay = np.asarray(token_overlay.render_overlay(image, ref, TS, CAPTION))[:image.shape[0]]
    for p in range(TH * TW):
        if ref[p] == p:
            assert np.array_equal(token(overlay, p), token(image, p)), p
    red = token(overlay, 18).reshape(-1, 3)
    expected = np.rint(0.45 * np.array(RED) + 0.55 * 96).astype(np.uint8)
    share = (red == expected).all(axis=1).mean()
    assert share > 0.8  # all but the hatch pixels are the grey blend
    assert not (red == np.array(RED, dtype=np.uint8)).all(axis=1).any()  # no pixel keeps its colour


def test_kept_tokens_are_unchanged_to_the_edge_without_the_grid(scene):
    image, ref = scene
    overlay = token_overlay.mark_dropped(image, ref, TS, grid=False)
    for p in range(TH * TW):
        if ref[p] == p:
            assert np.array_equal(token(overlay, p, interior=False), token(image, p, interior=False)), p


def test_grid_is_faint_and_only_on_token_borders(scene):
    image, _ref = scene
    keep_all = np.arange(TH * TW, dtype=np.int32)
    overlay = token_overlay.mark_dropped(image, keep_all, TS).astype(int)
    changed = (overlay != image).any(axis=2)
    rows, cols = np.nonzero(changed)
    assert ((rows % TS == 0) | (cols % TS == 0)).all()
    assert changed[TS, :].mean() > 0.9 and changed[:, TS].mean() > 0.9
    assert np.abs(overlay - image.astype(int)).max() <= 0.3 * 255 + 1  # 30% blend: faint


def test_white_dropped_token_is_visibly_darker(scene):
    image, ref = scene
    overlay = token_overlay.mark_dropped(image, ref, TS)
    white = token(overlay, 7).astype(float)
    assert white.max() <= 170
    assert white.mean() <= 255 - 80


def test_dropped_token_already_of_the_blend_grey_is_still_marked_by_the_hatch(scene):
    image, ref = scene
    overlay = token_overlay.mark_dropped(image, ref, TS).astype(int)
    diff = np.abs(token(overlay, 13) - token(image, 13).astype(int)).max(axis=2)
    assert (diff >= 60).mean() >= 1 / token_overlay.HATCH_PERIOD - 0.02


def test_side_by_side_adds_the_restored_image_and_for_errors_a_heat_map(scene):
    image, ref = scene
    h, w, _ = image.shape
    ref = ref.copy()
    ref[18] = 6  # rebuilt from a white token: a real reconstruction error
    restored = token_overlay.rebuild(image, ref, TS)
    two = np.asarray(png_roundtrip(token_overlay.render_overlay(image, ref, TS, CAPTION, side_by_side=True)))
    assert two.shape[1] == 2 * w + token_overlay.PANEL_GAP
    assert np.array_equal(two[:h, w + token_overlay.PANEL_GAP:], restored)
    errors = token_overlay.error_map(image, restored)
    three = token_overlay.render_overlay(image, ref, TS, CAPTION, side_by_side=True, restored=restored, error_map=errors)
    assert three.width == 3 * w + 2 * token_overlay.PANEL_GAP
    heat = np.asarray(three)[:h, 2 * (w + token_overlay.PANEL_GAP):]
    assert not heat[errors == 0].any()  # no error is black
    assert errors.max() == 255 - 30  # white over red's green channel
    assert (heat[errors == errors.max()] == 255).all()  # the largest error is white


def test_rebuild_equals_restore_through_gather_and_scatter():
    resized = resize_for_model(decode_image((ROOT / "samples" / "photo.jpg").read_bytes()), PRESET)
    ref = coder.code_refs(resized, TS, "pred_2d", "mae", 0.05)
    kept_index, index_map = tokens.layout(ref)
    pixels = tokens.gather_tokens(resized, kept_index, PRESET.patch_size, PRESET.merge_size)
    restored = tokens.scatter_tokens(pixels, index_map, *resized.shape[:2], PRESET.patch_size, PRESET.merge_size)
    assert np.array_equal(token_overlay.rebuild(resized, ref, TS), restored)
    assert not np.array_equal(restored, resized)  # tau > 0 really changed something


def test_overlay_for_image_draws_the_resized_image_with_a_caption():
    source = decode_image((ROOT / "samples" / "gui_window.png").read_bytes())
    resized = resize_for_model(source, PRESET)
    picture = png_roundtrip(token_overlay.overlay_for_image(source, CodingConfig(), title="gui_window.png"))
    assert picture.width == resized.shape[1] and picture.height > resized.shape[0]
    ref = coder.code_refs(resized, TS)
    assert np.array_equal(np.asarray(picture)[:resized.shape[0]], token_overlay.mark_dropped(resized, ref, TS))
    side = token_overlay.overlay_for_image(source, CodingConfig(metric="mae", tau=0.05), side_by_side=True)
    assert side.width == 3 * resized.shape[1] + 2 * token_overlay.PANEL_GAP  # tau > 0: heat map too
    lossless = token_overlay.overlay_for_image(source, CodingConfig(), side_by_side=True)
    assert lossless.width == 2 * resized.shape[1] + token_overlay.PANEL_GAP  # tau = 0: nothing to map


def test_overlay_with_a_budget_codes_at_the_tau_the_budget_search_finds():
    from pixelprune_cli.coding.budget import code_with_budget

    source = decode_image((ROOT / "samples" / "chart.png").read_bytes())
    resized = resize_for_model(source, PRESET)
    found = code_with_budget(resized, TS, "pred_2d", "mae", 250, 0.1)
    assert not found.over_budget and found.tau > 0
    picture = token_overlay.overlay_for_image(source, CodingConfig(metric="mae"), budget=250)
    assert np.array_equal(np.asarray(picture)[:resized.shape[0]], token_overlay.mark_dropped(resized, found.ref, TS))


def test_overlay_for_row_matches_the_image_overlay_at_tau_zero():
    source = decode_image((ROOT / "samples" / "form.png").read_bytes())
    config = CodingConfig()
    coded = code_image(source, config, "form.png")
    from_row = np.asarray(token_overlay.overlay_for_row(coded.as_row(), config.to_meta()))
    from_image = np.asarray(token_overlay.overlay_for_image(source, config))
    assert np.array_equal(from_row[:coded.height], from_image[:coded.height])


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """samples/ compressed to an Arrow file and a Parquet file, through the API the CLI uses."""
    from pixelprune_cli import api
    from pixelprune_cli.run.job import RunOptions

    folder = tmp_path_factory.mktemp("out")
    run = RunOptions(workers=1, progress=False)
    paths = {}
    for suffix in ("arrow", "parquet"):
        paths[suffix] = str(folder / f"out.{suffix}")
        api.compress([str(ROOT / "samples" / "table.png"), str(ROOT / "samples" / "slide.png")], paths[suffix],
                     CodingConfig(metric="rmse", tau=0.03), run=run)
    return paths


@pytest.mark.parametrize("suffix", ["arrow", "parquet"])
def test_output_rows_are_found_by_id_and_by_row_and_drawn_alike(outputs, suffix):
    path = outputs[suffix]
    config = CodingConfig()
    by_row, failures, _ = show.render_path(path, config, show.ShowOptions(row=1))
    slide = str(ROOT / "samples" / "slide.png")
    by_id = show.render_path(path, config, show.ShowOptions(image_id=slide)).picture
    assert failures == []
    assert np.array_equal(np.asarray(by_row), np.asarray(by_id))
    row, meta = show.read_output_row(path, row=1)
    assert row["id"] == slide and meta["metric"] == "rmse"
    resized = resize_for_model(decode_image(Path(slide).read_bytes()), PRESET)
    assert by_row.width == resized.shape[1]
    expected = coder.code_refs(resized, TS, "pred_2d", "rmse", 0.03)
    overlay = np.asarray(by_row)[:resized.shape[0]]
    assert np.array_equal(overlay, token_overlay.mark_dropped(token_overlay.rebuild(resized, expected, TS), expected, TS))


def test_missing_output_row_or_id_is_an_input_error(outputs):
    with pytest.raises(InputError, match="no row 5"):
        show.read_output_row(outputs["arrow"], row=5)
    with pytest.raises(InputError, match="no id"):
        show.read_output_row(outputs["arrow"], image_id="nope.png")


def test_parquet_image_table_row_is_decoded_from_its_row_group():
    path = str(ROOT / "samples" / "samples.parquet")
    table = pq.read_table(path)
    n = table.num_rows - 1  # the last row sits in the last row group
    cell = table.column("image")[n].as_py()
    expected = token_overlay.overlay_for_image(decode_image(cell["bytes"]), CodingConfig(), title=f"samples.parquet#{n}")
    got = show.render_path(path, CodingConfig(), show.ShowOptions(row=n)).picture
    assert np.array_equal(np.asarray(got), np.asarray(expected))
    with pytest.raises(InputError, match="no row"):
        show.read_table_image(path, table.num_rows)
    sheet, failures, note = show.render_path(path, CodingConfig(), show.ShowOptions(thumb=64, sample=4))  # no row: a contact sheet
    tile_w, tile_h = contact_sheet.contact_tile_size(64)
    assert sheet.size == (4 * tile_w, contact_sheet.header_height(4 * tile_w) + tile_h) and failures == []
    assert note == f"a random sample of 4 of {table.num_rows} images (--sample to change)"


def test_contact_sheet_has_one_tile_per_image_most_reduced_first():
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250)]
    fractions = [0.9, 0.2, 0.5, 0.7, 0.1]
    entries = [(Image.new("RGB", (40 + 10 * k, 30), c), f"image{k}", f) for k, (c, f) in enumerate(zip(colours, fractions))]
    thumb = 64
    sheet = png_roundtrip(contact_sheet.contact_sheet(entries, columns=2, thumb=thumb))
    tile_w, tile_h = contact_sheet.contact_tile_size(thumb)
    assert sheet.size == (2 * tile_w, 3 * tile_h)
    pixels = np.asarray(sheet)
    order = sorted(range(len(entries)), key=lambda k: fractions[k])
    for slot, k in enumerate(order):
        x = (slot % 2) * tile_w + token_overlay.PADDING + thumb // 2
        y = (slot // 2) * tile_h + token_overlay.PADDING + thumb // 2
        assert tuple(pixels[y, x]) == colours[k], (slot, k)
    empty = pixels[2 * tile_h:, tile_w:]  # the sixth slot has no image
    assert (empty == 255).all()


def test_contact_sheet_for_folder_tiles_every_readable_image(tmp_path):
    for name in ("form.png", "photo.jpg", "chart.png"):
        (tmp_path / name).write_bytes((ROOT / "samples" / name).read_bytes())
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("skipped")
    sheet, failures, total = contact_sheet.contact_sheet_for_folder([str(tmp_path)], CodingConfig(), thumb=96, columns=4)
    assert total == 4
    tile_w, tile_h = contact_sheet.contact_tile_size(96)
    top = contact_sheet.header_height(4 * tile_w)  # the line of totals
    assert sheet.size == (4 * tile_w, top + tile_h)
    assert [f.id for f in failures] == ["broken.png"]
    pixels = np.asarray(png_roundtrip(sheet))
    assert (pixels[top:, 3 * tile_w:] == 255).all()  # three tiles, the fourth slot empty
    for slot in range(3):
        tile = pixels[top + token_overlay.PADDING:top + token_overlay.PADDING + 96, slot * tile_w:(slot + 1) * tile_w]
        assert (tile != 255).any()


def test_render_path_on_a_folder_gives_a_contact_sheet(tmp_path):
    (tmp_path / "slide.png").write_bytes((ROOT / "samples" / "slide.png").read_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    sheet, failures, note = show.render_path(str(tmp_path), CodingConfig(), show.ShowOptions(thumb=80))
    assert note is None  # two images, under the default sample size
    tile_w, tile_h = contact_sheet.contact_tile_size(80)
    assert sheet.size == (tile_w, contact_sheet.header_height(tile_w) + tile_h)
    assert [(f.id, f.stage) for f in failures] == [("broken.jpg", "decode")]
    with pytest.raises(ConfigError):
        show.render_path(str(tmp_path), CodingConfig(), show.ShowOptions(row=0))


def ink_rows(picture: Image.Image, top: int) -> int:
    """How many pixel rows below `top` hold dark (text) pixels: the drawn caption's height, measured from its ink."""
    text = np.asarray(picture.convert("L"))[top:]
    return int((text < 128).any(axis=1).sum())


@pytest.mark.parametrize("tokens_wide", [15, 60])  # 480 px and a 1,920 px picture (32 px tokens)
def test_caption_grows_with_the_picture(tokens_wide):
    image = np.full((2 * TS, tokens_wide * TS, 3), 200, dtype=np.uint8)
    ref = np.arange(2 * tokens_wide, dtype=np.int32)
    picture = token_overlay.render_overlay(image, ref, TS, CAPTION)
    width, caption_top = picture.width, image.shape[0]
    ink = ink_rows(picture, caption_top)
    assert ink >= max(12, width / 100), (width, ink)  # a 1,920 px picture: at least 19 px of text, not 11
    assert picture.height - caption_top <= max(40, width / 25)  # and the bar stays a caption, not a banner


@pytest.mark.parametrize("thumb", [128, 512])
def test_contact_sheet_labels_grow_with_the_thumbnails(thumb):
    tile = Image.new("RGB", (thumb, thumb), (200, 200, 200))
    sheet = contact_sheet.contact_sheet([(tile, "Agjy_label.png", 0.5)], thumb=thumb)
    ink = ink_rows(sheet, token_overlay.PADDING + thumb)
    assert ink >= max(20, thumb / 14), (thumb, ink)  # two label lines: at least 2 x thumb/28 px of text
    assert sheet.height - thumb <= max(60, thumb / 4)


def test_no_saving_reads_0_percent_never_minus_0_0():
    assert token_overlay.caption_for("qwen3-vl", "pred_2d", "max", 0, 475, 475).endswith("| kept 475/475 tokens | 0%")
    assert token_overlay.caption_for("qwen3-vl", "pred_2d", "max", 0, 327, 620).endswith("| -47.3%")
    assert token_overlay.saving_text(1.0, 1) == "0%"
    assert token_overlay.saving_text(9999, 10000) == "-<0.1%"  # a saving too small for one decimal is still one
    assert token_overlay.saving_text(0, 0) == "0%"


def test_contact_sheet_header_totals_the_tiles_shown(tmp_path):
    for name in ("form.png", "photo.jpg", "chart.png"):
        (tmp_path / name).write_bytes((ROOT / "samples" / name).read_bytes())
    (tmp_path / "broken.png").write_bytes(b"not an image")
    coded = {name: code_image(Image.open(tmp_path / name), CodingConfig()) for name in ("form.png", "photo.jpg", "chart.png")}
    kept, tokens = sum(c.kept for c in coded.values()), sum(c.tokens for c in coded.values())
    sheet, _, total = contact_sheet.contact_sheet_for_folder([str(tmp_path)], CodingConfig(), thumb=64, columns=4)
    assert total == 4
    top = contact_sheet.header_height(sheet.width)
    assert ink_rows(sheet.crop((0, 0, sheet.width, top)), 0) >= 10  # the line is drawn above the tiles
    entries = [(None, name, c.kept / c.tokens, (c.kept, c.tokens)) for name, c in coded.items()]
    assert contact_sheet.sheet_header(entries, of=4, failed=1) == (
        f"3 images of 4 | kept {kept:,} of {tokens:,} tokens (-{100 * (1 - kept / tokens):.1f}%) | 1 failed")
    assert contact_sheet.sheet_header(entries[1:2]) == "1 image | kept 475 of 475 tokens (0%)"  # the photo keeps all


def test_api_show_writes_the_picture_the_cli_draws_with_its_mark(tmp_path):
    """api.show is show's Python twin: same picture as render_path, written whole, marked as ours."""
    from pixelprune_cli import api

    source = ROOT / "samples" / "photo.jpg"
    rendering = api.show(str(source), str(tmp_path / "photo.png"), CodingConfig(), show.ShowOptions(side_by_side=True))
    written = Image.open(tmp_path / "photo.png")
    assert written.info.get(contact_sheet.MARK_KEY) == contact_sheet.MARK_VALUE
    assert np.array_equal(np.asarray(written.convert("RGB")), np.asarray(rendering.picture.convert("RGB")))
    drawn = show.render_path(str(source), CodingConfig(), show.ShowOptions(side_by_side=True))
    assert np.array_equal(np.asarray(drawn.picture.convert("RGB")), np.asarray(rendering.picture.convert("RGB")))
    assert [p.name for p in tmp_path.iterdir()] == ["photo.png"]  # no temporary file left


def test_api_show_refuses_before_drawing_a_bad_suffix_an_existing_picture_or_one_inside_its_input(tmp_path):
    from pixelprune_cli import api

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (64, 64), RED).save(folder / "a.png")
    with pytest.raises(ConfigError, match="show writes a picture"):
        api.show(str(folder / "a.png"), str(tmp_path / "a.txt"))
    (tmp_path / "old.png").write_bytes(b"mine")
    with pytest.raises(ConfigError, match="already exists; pass overwrite=True"):
        api.show(str(folder / "a.png"), str(tmp_path / "old.png"))
    assert (tmp_path / "old.png").read_bytes() == b"mine"
    with pytest.raises(ConfigError, match="inside the input folder"):
        api.show(str(folder), str(folder / "sheet.png"))
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]
    api.show(str(folder / "a.png"), str(tmp_path / "old.png"), overwrite=True)
    assert Image.open(tmp_path / "old.png").info.get(contact_sheet.MARK_KEY) == contact_sheet.MARK_VALUE


def test_warmup_reports_each_preset_it_compiled_for():
    import pixelprune_cli as pp

    covered = pp.warmup()
    assert covered[:2] == ["qwen3-vl (32 px tokens)", "qwen2-vl (28 px tokens)"]
    assert covered[2].startswith("resize (")
