"""Our BICUBIC resize against the installed Pillow: the same bytes (max difference 0), or Pillow's own.

The oracle is Pillow itself, called on the same pixels. Images are small so
thousands of sizes run in seconds; a few medium ones cross the band edges.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from pixelprune_cli.coding import preprocess, resize
from pixelprune_cli.coding.presets import PRESETS

from conftest import SAMPLE_IMAGES

BICUBIC = Image.Resampling.BICUBIC


def pillow(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(array, "RGB").resize(size, BICUBIC))


def assert_same_as_pillow(array: np.ndarray, size: tuple[int, int]) -> None:
    """Ours on 3-byte pixels and on Pillow's 4-byte layout (a padding byte that must not leak in)."""
    theirs = pillow(array, size)
    padded = np.concatenate([array, np.full(array.shape[:2] + (1,), 201, np.uint8)], axis=2)
    for source in (array, padded):
        ours = resize.resize_array(source, size)
        assert ours.shape == theirs.shape
        diff = np.abs(ours.astype(np.int16) - theirs).max()
        assert diff == 0, f"{array.shape[1]}x{array.shape[0]} to {size[0]}x{size[1]}: max difference {diff}"


def picture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Noise, hard 0/255 edges (the sums that clip), or flat blocks with a noisy band."""
    kind = rng.integers(3)
    if kind == 0:
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == 1:
        return (rng.integers(0, 2, (height, width, 3)) * 255).astype(np.uint8)
    array = np.full((height, width, 3), rng.integers(0, 256, 3), np.uint8)
    array[height // 3: height // 2] = rng.integers(0, 256, (height // 2 - height // 3, width, 3))
    return array


def side_pair(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height), aspect ratio up to 200 either way, small enough for thousands of cases."""
    short = int(rng.integers(1, 9))
    long = int(rng.integers(short, min(200 * short, 300) + 1))
    return (short, long) if rng.integers(2) else (long, short)


def test_equals_pillow_on_2000_random_sizes_up_and_down():
    rng = np.random.default_rng(2000)
    orders = {True: 0, False: 0}
    for _ in range(2100):
        width, height = side_pair(rng)
        size = side_pair(rng) if rng.integers(2) else (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        assert_same_as_pillow(picture(rng, height, width), size)
        if size[0] != width and size[1] != height:
            orders[resize.vertical_first((width, height), size)] += 1
    assert min(orders.values()) > 200  # both of Pillow's pass orders were exercised


def test_equals_pillow_on_one_pixel_sides():
    rng = np.random.default_rng(1)
    sides = (1, 2, 3, 7, 40)
    for width in sides:
        for height in sides:
            array = picture(rng, height, width)
            for size in [(1, 1), (1, 9), (9, 1), (1, height), (width, 1), (3, 40), (40, 3)]:
                assert_same_as_pillow(array, size)


@pytest.mark.parametrize("source, size", [
    ((150, 170), (97, 233)),  # horizontal first, rows of the first pass shared between bands
    ((233, 400), (120, 130)),  # vertical first, several bands
    ((90, 300), (300, 90)),
    ((300, 250), (301, 251)),  # next to 1x, the common case for smart_resize
    ((400, 129), (80, 129)),  # horizontal only
    ((77, 500), (77, 64)),  # vertical only
])
def test_equals_pillow_across_bands(source, size):
    rng = np.random.default_rng(sum(source) + sum(size))
    for _ in range(3):
        assert_same_as_pillow(picture(rng, source[1], source[0]), size)


@pytest.mark.parametrize("path", SAMPLE_IMAGES, ids=lambda p: p.name)
def test_equals_pillow_on_samples_at_model_and_other_sizes(path):
    rgb = preprocess.convert_rgb(preprocess.decode_image(path.read_bytes()))
    array = np.asarray(rgb)
    sizes = {preprocess.model_size(rgb.size, preset) for preset in PRESETS.values()}
    sizes |= {(max(1, int(rgb.width * f)), max(1, int(rgb.height * g))) for f, g in [(0.37, 0.41), (2.3, 1.7), (0.9, 0.2)]}
    for size in sizes:
        assert_same_as_pillow(array, size)


def test_pass_order_switches_where_pillow_switches():
    """Pillow 13 resizes vertically first only when the height shrinks by more than twice the width's change."""
    assert resize.vertical_first((100, 100), (80, 59))
    assert not resize.vertical_first((100, 100), (80, 60))
    assert not resize.vertical_first((100, 100), (120, 100))
    rng = np.random.default_rng(5)
    array = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    for height in (58, 59, 60, 61):
        assert_same_as_pillow(array, (80, height))


def test_check_passes_on_the_installed_pillow():
    assert resize._differs_from_pillow() is None
    assert resize.fast_path_ok()


def test_falls_back_to_pillow_with_one_warning_when_pillow_changes(monkeypatch):
    real_resize = Image.Image.resize

    def changed_resize(self, size, resample=None, box=None, reducing_gap=None):
        """A future Pillow that rounds one pixel differently."""
        out = np.array(real_resize(self, size, resample, box, reducing_gap))
        out[0, 0] ^= 1
        return Image.fromarray(out, self.mode)

    monkeypatch.setattr(Image.Image, "resize", changed_resize)
    monkeypatch.setattr(resize, "_verdict", None)
    rgb = Image.fromarray(np.random.default_rng(3).integers(0, 256, (50, 60, 3), dtype=np.uint8))
    with pytest.warns(RuntimeWarning, match="differs from the installed Pillow"):
        first = preprocess.resize_rgb(rgb, (33, 21))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        second = preprocess.resize_rgb(rgb, (33, 21))
    expected = np.asarray(changed_resize(rgb, (33, 21), BICUBIC))
    assert np.array_equal(first, expected) and np.array_equal(second, expected)
    assert not np.array_equal(first, resize.resize_array(np.asarray(rgb), (33, 21)))


def test_modes_it_does_not_cover_go_to_pillow(monkeypatch):
    def not_ours(*args):
        raise AssertionError("the fast path ran for a mode it does not cover")

    monkeypatch.setattr(resize, "resize_array", not_ours)
    grey = Image.fromarray(np.random.default_rng(4).integers(0, 256, (30, 40), dtype=np.uint8), "L")
    assert np.array_equal(resize.resize_bicubic(grey, (17, 50)), np.asarray(grey.resize((17, 50), BICUBIC)))


def test_pixels_come_out_of_pillow_as_numpy_sees_them(monkeypatch):
    rng = np.random.default_rng(6)
    for width, height in [(1, 1), (1, 70), (333, 1), (517, 301)]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        assert np.array_equal(resize.rgb_pixels(image), np.asarray(image))
        assert np.array_equal(resize.pillow_pixels(image)[:, :, :3], np.asarray(image))
        assert np.array_equal(resize.resize_bicubic(image, image.size), np.asarray(image))

    def no_encoder(*args):
        raise AttributeError("a Pillow without _getencoder")

    expected = np.asarray(image)
    monkeypatch.setattr(Image, "_getencoder", no_encoder)
    monkeypatch.setattr(Image.Image, "tobytes", lambda self: np.asarray(expected).tobytes())  # np.asarray's route
    assert np.array_equal(resize.rgb_pixels(image), expected)


def test_a_pillow_that_will_not_map_our_buffer_still_gives_pillows_bytes(monkeypatch):
    image = Image.fromarray(np.random.default_rng(7).integers(0, 256, (45, 38, 3), dtype=np.uint8))

    def no_mapping(*args):
        raise ValueError("a Pillow that cannot map this buffer")

    monkeypatch.setattr(Image, "frombuffer", no_mapping)
    assert resize.pillow_pixels(image).shape == (45, 38, 3)
    assert np.array_equal(resize.resize_bicubic(image, (20, 61)), np.asarray(image.resize((20, 61), BICUBIC)))
