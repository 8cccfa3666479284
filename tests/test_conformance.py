"""pixelprune against transformers' Qwen2VLImageProcessorPil, value for value.

The processor is built from each preset's config values (no hub download) and
fed what HF `datasets` would feed it: the PIL image, or for encoded samples
the image `datasets.Image().decode_example` produces. Every comparison of
pixel values is exact (np.array_equal on float32, i.e. max abs difference 0).

The processor's rows come in merged-token order: merge^2 consecutive rows per
merged token, merged tokens row-major; `test_processor_rows_come_in_merged_token_order`
checks that assumption against the processor itself.
"""

from __future__ import annotations

import io
import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pixelprune_cli.coding import pipeline
from pixelprune_cli.coding.backends import normalisation_table
from pixelprune_cli.coding.preprocess import decode_image, smart_resize
from pixelprune_cli.coding.presets import PRESETS, resolve_preset
from pixelprune_cli.errors import ResizeFailure
from pixelprune_cli.model import model_inputs

transformers = pytest.importorskip("transformers")
from transformers import Qwen2VLImageProcessorPil  # noqa: E402
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize  # noqa: E402

import images  # noqa: E402

# The three presets as shipped, plus two with a small max_pixels so that the
# floor branch of smart_resize runs for both token sizes (28 and 32) without
# processing 12-megapixel images.
PRESET_CASES = {
    **PRESETS,
    "qwen2-vl@max200k": resolve_preset("qwen2-vl", max_pixels=200_000),
    "qwen3-vl@max300k": resolve_preset("qwen3-vl", max_pixels=300_000),
}
POSITIVE_TAU = (("pred_2d", "max", 0.1), ("raster", "mae", 0.02), ("serpentine", "rmse", 0.05))

_processors: dict[str, Qwen2VLImageProcessorPil] = {}


def processor_for(preset_name: str) -> Qwen2VLImageProcessorPil:
    """The reference processor, configured from the preset's values alone."""
    if preset_name not in _processors:
        p = PRESET_CASES[preset_name]
        _processors[preset_name] = Qwen2VLImageProcessorPil(
            patch_size=p.patch_size,
            merge_size=p.merge_size,
            temporal_patch_size=p.temporal_patch_size,
            size={"shortest_edge": p.min_pixels, "longest_edge": p.max_pixels},
            image_mean=list(p.image_mean),
            image_std=list(p.image_std),
        )
    return _processors[preset_name]


def datasets_decode(data: bytes) -> Image.Image:
    """What a `datasets` Image column yields for these bytes."""
    import datasets

    return datasets.Image().decode_example({"path": None, "bytes": data})


def run_processor(preset_name: str, image: Image.Image, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = processor_for(preset_name)(images=image, return_tensors="np", **kwargs)
    return np.asarray(out["pixel_values"]), np.asarray(out["image_grid_thw"])


def processor_order_positions(grid_h: int, grid_w: int, merge: int) -> np.ndarray:
    """(grid_h*grid_w, 3) int: (0, h, w) of each processor row, merged tokens row-major."""
    hh, ww = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")

    def in_row_order(a):
        return a.reshape(grid_h // merge, merge, grid_w // merge, merge).transpose(0, 2, 1, 3).reshape(-1)

    return np.stack([np.zeros(grid_h * grid_w, dtype=np.int64), in_row_order(hh), in_row_order(ww)], axis=1)


def rows_of_tokens(tokens: np.ndarray, merge: int) -> np.ndarray:
    """Processor row numbers of the given merged tokens, in order."""
    m2 = merge * merge
    return (np.asarray(tokens, dtype=np.int64)[:, None] * m2 + np.arange(m2)).reshape(-1)


# ------------------------------------------------------------- per-image cases

CASES = [(s.name, preset) for s in images.samples() for preset in PRESET_CASES]


class Case:
    """One image under one preset: our output at tau=0 and the processor's output."""

    def __init__(self, sample_name: str, preset_name: str):
        sample = images.by_name(sample_name)
        self.preset_name = preset_name
        self.preset = PRESET_CASES[preset_name]
        if sample.data is not None:
            self.ours_image = decode_image(sample.data)
            self.reference_image = datasets_decode(sample.data)
        else:
            self.ours_image = self.reference_image = sample.image
        self.coded = pipeline.code_image(self.ours_image, pipeline.CodingConfig(preset=self.preset))
        self.inputs = model_inputs(self.coded.as_row(), self.preset)
        self.pixel_values, self.grid_thw = run_processor(preset_name, self.reference_image)


@pytest.fixture(scope="module", params=CASES, ids=[f"{s}-{p}" for s, p in CASES])
def case(request) -> Case:
    # Module scope with params: pytest runs every test of one case together,
    # so only one case's processor output is held in memory at a time.
    return Case(*request.param)


def test_grid_thw_equals_processor_grid(case):
    expected = tuple(int(v) for v in case.grid_thw[0])
    assert case.coded.grid_thw == expected
    assert case.inputs["image_grid_thw"].tolist() == [list(expected)]
    assert case.coded.tokens * case.preset.merge_size**2 == case.pixel_values.shape[0]


def test_pixel_values_equal_processor_rows_of_kept_tokens(case):
    m = case.preset.merge_size
    expected = case.pixel_values[rows_of_tokens(case.coded.kept_index, m)]
    got = case.inputs["pixel_values"]
    assert got.dtype == np.float32 and expected.dtype == np.float32
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"max abs diff {np.abs(got - expected).max()}"


def test_positions_are_patch_coordinates_of_kept_rows(case):
    _, grid_h, grid_w = (int(v) for v in case.grid_thw[0])
    all_positions = processor_order_positions(grid_h, grid_w, case.preset.merge_size)
    expected = all_positions[rows_of_tokens(case.coded.kept_index, case.preset.merge_size)]
    assert np.array_equal(case.inputs["positions"], expected)


def test_dropped_tokens_are_lossless_in_model_space_at_tau_zero(case):
    """Each token's processor rows equal the rows of the kept token that rebuilds it."""
    m2 = case.preset.merge_size**2
    per_token = case.pixel_values.reshape(case.coded.tokens, m2, -1)
    rebuilt_from = case.coded.kept_index[case.coded.index_map]
    assert np.array_equal(per_token, per_token[rebuilt_from])
    ours = case.inputs["pixel_values"].reshape(case.coded.kept, m2, -1)
    assert np.array_equal(ours[case.coded.index_map], per_token)


@pytest.mark.parametrize("method,metric,tau", POSITIVE_TAU)
def test_kept_rows_stay_exact_at_positive_tau(case, method, metric, tau):
    config = pipeline.CodingConfig(preset=case.preset, method=method, metric=metric, tau=tau)
    coded = pipeline.code_image(case.ours_image, config)
    inputs = model_inputs(coded.as_row(), case.preset)
    m = case.preset.merge_size
    assert coded.grid_thw == case.coded.grid_thw
    assert inputs["pixel_values"].shape == (coded.kept * m * m, case.pixel_values.shape[1])
    assert inputs["positions"].shape == (coded.kept * m * m, 3)
    assert np.array_equal(inputs["pixel_values"], case.pixel_values[rows_of_tokens(coded.kept_index, m)])


# ------------------------------------------------------------- layout, decode, corpus

@pytest.mark.parametrize("preset_name", ["qwen2-vl", "qwen3-vl"])
def test_processor_rows_come_in_merged_token_order(preset_name):
    """Paint each patch with its own (h, w) and read them back from the processor's rows."""
    p = PRESET_CASES[preset_name]
    grid_h, grid_w = 4, 6
    coords = np.zeros((grid_h, grid_w, 3), dtype=np.uint8)
    coords[..., 0] = np.arange(grid_h)[:, None] * 40
    coords[..., 1] = np.arange(grid_w)[None, :] * 40
    image = Image.fromarray(np.repeat(np.repeat(coords, p.patch_size, 0), p.patch_size, 1))
    pixel_values, grid = run_processor(preset_name, image, do_resize=False)
    assert grid.tolist() == [[1, grid_h, grid_w]]
    table = normalisation_table(p)
    # First value of each row: channel 0, first temporal copy, top-left pixel.
    first_r = pixel_values[:, 0]
    first_g = pixel_values[:, p.temporal_patch_size * p.patch_size**2]
    h = np.array([np.flatnonzero(table[0] == v)[0] for v in first_r]) // 40
    w = np.array([np.flatnonzero(table[1] == v)[0] for v in first_g]) // 40
    expected = processor_order_positions(grid_h, grid_w, p.merge_size)
    assert np.array_equal(np.stack([np.zeros_like(h), h, w], axis=1), expected)


@pytest.mark.parametrize("name", [s.name for s in images.samples() if s.data is not None])
def test_decode_image_matches_datasets_decode(name):
    data = images.by_name(name).data
    ours, theirs = decode_image(data), datasets_decode(data)
    assert (ours.mode, ours.size) == (theirs.mode, theirs.size)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    assert ours.info.get("transparency") == theirs.info.get("transparency")


def test_exif_orientation_turns_the_decoded_image_upright():
    data = images.by_name("jpeg_exif_rotate_90").data
    image = decode_image(data)
    assert image.size == (180, 300)  # stored as 300x180; orientation 6 means "rotate 90 degrees clockwise"
    with Image.open(io.BytesIO(data)) as stored:
        assert np.array_equal(np.asarray(image), np.asarray(stored.transpose(Image.Transpose.ROTATE_270)))


@pytest.mark.parametrize("name", ["rgb_large_1600x1200", "RGBA_280x240", "P_320x240", "jpeg_exif_rotate_90"])
def test_corpus_has_both_redundant_and_informative_tokens(name):
    sample = images.by_name(name)
    image = sample.image if sample.image is not None else decode_image(sample.data)
    coded = pipeline.code_image(image, pipeline.CodingConfig(preset=PRESETS["qwen3-vl"]))
    assert 1 < coded.kept < coded.tokens


# ------------------------------------------------------------- smart_resize, refusals, normalisation

SIDES = (1, 2, 3, 5, 13, 14, 15, 27, 28, 29, 31, 32, 33, 42, 48, 56, 80, 112, 144, 199, 200, 201,
         208, 336, 350, 742, 1000, 1023, 3000, 4001, 9999, 40000)
BOUNDS = sorted({(p.patch_size * p.merge_size, p.min_pixels, p.max_pixels) for p in PRESET_CASES.values()})


def _both(height, width, factor, min_pixels, max_pixels):
    """(ours, transformers'), each a size or the string 'refused'."""
    try:
        ours = smart_resize(height, width, factor, min_pixels, max_pixels)
    except ResizeFailure:
        ours = "refused"
    try:
        theirs = hf_smart_resize(height, width, factor, min_pixels, max_pixels)
    except ValueError:
        theirs = "refused"
    return ours, theirs


@pytest.mark.parametrize("factor,min_pixels,max_pixels", BOUNDS)
def test_smart_resize_matches_transformers_on_a_grid(factor, min_pixels, max_pixels):
    mismatches = []
    refused = 0
    for height, width in itertools.product(SIDES, SIDES):
        ours, theirs = _both(height, width, factor, min_pixels, max_pixels)
        refused += ours == "refused"
        if ours != theirs:
            mismatches.append(((height, width), ours, theirs))
    assert not mismatches, mismatches[:10]
    assert refused > 0  # the grid does reach aspect ratios over 200


@settings(max_examples=400, deadline=None)
@given(height=st.integers(1, 60_000), width=st.integers(1, 60_000), bounds=st.sampled_from(BOUNDS))
def test_smart_resize_matches_transformers_on_random_sizes(height, width, bounds):
    ours, theirs = _both(height, width, *bounds)
    assert ours == theirs


def test_half_way_sides_round_to_even_like_the_processor():
    assert smart_resize(336, 350, 32, 65536, 16777216) == (320, 352)  # 10.5 -> 10
    assert smart_resize(350, 336, 28, 3136, 12845056) == (336, 336)  # 12.5 -> 12
    assert smart_resize(336, 350, 32, 65536, 16777216) == hf_smart_resize(336, 350, 32, 65536, 16777216)


@pytest.mark.parametrize("preset_name", ["qwen2-vl", "qwen3-vl"])
@pytest.mark.parametrize("size", [(250, 1), (1, 250), (603, 3)])
def test_extreme_aspect_image_is_refused_like_the_processor(preset_name, size):
    image = Image.fromarray(images.content(size[1], size[0]))
    with pytest.raises(ResizeFailure, match="aspect ratio"):
        pipeline.code_image(image, pipeline.CodingConfig(preset=PRESET_CASES[preset_name]))
    with pytest.raises(ValueError, match="aspect ratio"):
        run_processor(preset_name, image)


@pytest.mark.parametrize("preset_name", list(PRESETS))
def test_normalisation_table_equals_processor_float_steps(preset_name):
    proc = processor_for(preset_name)
    levels = np.broadcast_to(np.arange(256, dtype=np.uint8), (3, 1, 256)).copy()  # channel-first
    expected = proc.normalize(proc.rescale(levels, proc.rescale_factor), proc.image_mean, proc.image_std)
    table = normalisation_table(PRESETS[preset_name])
    assert expected.dtype == np.float32 and table.dtype == np.float32
    assert np.array_equal(table, expected[:, 0, :])
