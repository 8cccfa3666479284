"""The torchvision and qwen-vl-utils backends against the real thing, value for value.

- torchvision: transformers' `Qwen2VLImageProcessor` (the class AutoProcessor
  picks when torchvision is installed), fed what `datasets` yields.
- qwen-vl-utils: `qwen_vl_utils.fetch_image` on the image as a user opens it
  (no EXIF orientation), then either processor class with do_resize=False, as
  Qwen3-VL's cookbook calls it.

Each runs over every preset case of the PIL conformance tests, on the
generated images (every resize branch, mode and EXIF orientation) and the ten
samples. "Exact" is np.array_equal on float32: max abs difference 0.
"""

from __future__ import annotations

import io
import sys
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

from pixelprune_cli import prune
from pixelprune_cli.coding import backends, pipeline
from pixelprune_cli.coding.preprocess import decode_image, open_image
from pixelprune_cli.coding.presets import PRESETS
from pixelprune_cli.errors import ConfigError
from pixelprune_cli.model import model_inputs
from pixelprune_cli.outputs.schema import read_meta

torch = pytest.importorskip("torch", reason="the torchvision backend needs torch")
pytest.importorskip("torchvision", reason="the torchvision backend needs torchvision")
pytest.importorskip("transformers")
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil  # noqa: E402

import images  # noqa: E402
from conftest import SAMPLE_IMAGES, cli, one_line_error, read_arrow  # noqa: E402
from test_conformance import PRESET_CASES, datasets_decode, rows_of_tokens  # noqa: E402

PROCESSOR_CLASSES = {"pil": Qwen2VLImageProcessorPil, "torchvision": Qwen2VLImageProcessor}


def processor(kind: str, preset):
    """The processor class of that backend, configured from the preset's values alone."""
    return PROCESSOR_CLASSES[kind](
        patch_size=preset.patch_size, merge_size=preset.merge_size, temporal_patch_size=preset.temporal_patch_size,
        size={"shortest_edge": preset.min_pixels, "longest_edge": preset.max_pixels},
        image_mean=list(preset.image_mean), image_std=list(preset.image_std))


def run(proc, image, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = proc(images=image, return_tensors="np", **kwargs)
    return np.asarray(out["pixel_values"]), np.asarray(out["image_grid_thw"])


def corpus():
    """(name, bytes or PIL image): the generated conformance images and the ten samples."""
    found = [(s.name, s.data if s.data is not None else s.image) for s in images.samples()]
    return found + [(p.name, p.read_bytes()) for p in SAMPLE_IMAGES]


def opened(source) -> Image.Image:
    """The image as a user hands it to fetch_image: Image.open, nothing else."""
    return Image.open(io.BytesIO(source)) if isinstance(source, bytes) else source


def mismatch(row, meta, processor_kind, pixel_values, grid) -> str | None:
    """None when the row's model inputs are the processor's rows of its kept tokens, bit for bit."""
    if grid.tolist() != [list(row["grid_thw"])]:
        return f"grid {list(row['grid_thw'])} != {grid.tolist()}"
    got = model_inputs(row, meta, processor_kind)["pixel_values"]
    expected = pixel_values[rows_of_tokens(row["kept_index"], meta["merge_size"])]
    if got.shape != expected.shape:
        return f"shape {got.shape} != {expected.shape}"
    if not np.array_equal(got, expected):
        return f"max abs diff {np.abs(got - expected).max()}"
    return None


# ------------------------------------------------------------- torchvision

@pytest.mark.parametrize("preset_name", list(PRESET_CASES))
def test_torchvision_backend_equals_qwen2vl_image_processor(preset_name):
    preset = PRESET_CASES[preset_name]
    meta = pipeline.CodingConfig(preset, backend="torchvision").to_meta()
    proc = processor("torchvision", preset)
    failures = []
    for name, source in corpus():
        reference = datasets_decode(source) if isinstance(source, bytes) else source
        expected = run(proc, reference)
        row = prune.prune_image(source, meta, backend="torchvision")
        assert model_inputs(row, meta)["pixel_values"].dtype == np.float32
        if (problem := mismatch(row, meta, None, *expected)) is not None:  # default: the rows' own processor
            failures.append((name, problem))
    assert not failures, failures


def test_torchvision_backend_differs_from_pil_where_the_kernels_differ():
    """The two backends are not the same function: most resized images differ, unresized ones do not."""
    preset = PRESETS["qwen3-vl"]
    differ = same = 0
    for path in SAMPLE_IMAGES:
        data = path.read_bytes()
        pil = pipeline.code_image(decode_image(data), pipeline.CodingConfig(preset))
        tv = pipeline.code_image(decode_image(data), pipeline.CodingConfig(preset, backend="torchvision"))
        assert pil.grid_thw == tv.grid_thw
        resized = (pil.width, pil.height) != (pil.source_width, pil.source_height)
        equal = np.array_equal(pil.pixels, tv.pixels)
        assert equal or resized
        differ += not equal
        same += equal
    assert differ >= 5


def test_torchvision_normalisation_table_equals_the_processors_fused_float_steps():
    for preset in PRESETS.values():
        proc = processor("torchvision", preset)
        levels = torch.arange(256, dtype=torch.uint8).expand(1, 3, 1, 256).contiguous()
        expected = proc.rescale_and_normalize(levels, True, proc.rescale_factor, True, tuple(proc.image_mean),
                                              tuple(proc.image_std))[0, :, 0, :].numpy()
        table = backends.normalisation_table(preset, "torchvision")
        assert table.dtype == np.float32 and np.array_equal(table, expected)
        assert not np.array_equal(table, backends.normalisation_table(preset, "pil"))  # they differ in last bits


def _resize_bytes(array: np.ndarray, target) -> bytes:
    return backends.torchvision_resize(Image.fromarray(array), target).tobytes()


def test_torchvision_resize_gives_the_same_bytes_with_1_and_2_threads_and_in_worker_threads():
    rng = np.random.default_rng(0)
    source = images.content(1200, 1600, 3)
    source[::7] = rng.integers(0, 256, size=source[::7].shape, dtype=np.uint8)  # edges on every row band
    cases = [(source, (1024, 768)), (source, (2048, 1536)), (source[:300, :200].copy(), (512, 768))]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [_resize_bytes(a, t) for a, t in cases]
        torch.set_num_threads(2)
        two = [_resize_bytes(a, t) for a, t in cases]
    finally:
        torch.set_num_threads(before)
    assert one == two
    results: dict[int, list[bytes]] = {}

    def work(k):
        results[k] = [_resize_bytes(a, t) for a, t in cases]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[k] == one for k in range(4))


# ------------------------------------------------------------- qwen-vl-utils

@pytest.fixture(scope="module")
def qwen_vl_utils():
    return pytest.importorskip("qwen_vl_utils", reason="qwen-vl-utils (the test extra) is not installed")


@pytest.mark.parametrize("preset_name", list(PRESET_CASES))
def test_qwen_vl_utils_backend_equals_fetch_image_then_each_processor(qwen_vl_utils, preset_name):
    preset = PRESET_CASES[preset_name]
    meta = pipeline.CodingConfig(preset, backend="qwen-vl-utils").to_meta()
    procs = {kind: processor(kind, preset) for kind in PROCESSOR_CLASSES}
    failures = []
    for name, source in corpus():
        element = {"image": opened(source), "min_pixels": preset.min_pixels, "max_pixels": preset.max_pixels}
        fetched = qwen_vl_utils.fetch_image(element, image_patch_size=preset.patch_size)
        row = prune.prune_image(source, meta, backend="qwen-vl-utils")
        for kind, proc in procs.items():
            if (problem := mismatch(row, meta, kind, *run(proc, fetched, do_resize=False))) is not None:
                failures.append((name, kind, problem))
    assert not failures, failures


def test_qwen_vl_utils_ignores_exif_orientation_and_uses_its_own_small_image_bounds(qwen_vl_utils):
    data = images.by_name("jpeg_exif_rotate_90").data  # stored 300x180, orientation 6
    small = Image.fromarray(images.content(80, 100, 1))  # 100x80: below Qwen3-VL's 65,536 px
    qwen3 = backends.preset_for("qwen-vl-utils", "qwen3-vl")
    assert (qwen3.min_pixels, qwen3.max_pixels) == (4096, 16_777_216)
    assert backends.preset_for("qwen-vl-utils", "qwen2-vl") == PRESETS["qwen2-vl"]  # same bounds as the processor

    rotated = prune.prune_image(data, "qwen3-vl", backend="qwen-vl-utils")
    assert (rotated["source_width"], rotated["source_height"]) == (300, 180)
    upright = prune.prune_image(data, "qwen3-vl")
    assert (upright["source_width"], upright["source_height"]) == (180, 300)

    fetched = qwen_vl_utils.fetch_image({"image": small}, image_patch_size=16)  # fetch_image's own defaults
    row = prune.prune_image(small, "qwen3-vl", backend="qwen-vl-utils")
    assert fetched.size == (row["width"], row["height"]) == (96, 64)
    assert list(row["grid_thw"]) == [1, 4, 6]
    assert list(prune.prune_image(small, "qwen3-vl")["grid_thw"]) == [1, 16, 18]  # the processor's own resize


def test_qwen_vl_utils_rows_default_to_torchvision_float_steps():
    """qwen-vl-utils imports torchvision, so its users' AutoProcessor is the torchvision class."""
    meta = pipeline.CodingConfig(PRESETS["qwen3-vl"], backend="qwen-vl-utils").to_meta()
    row = prune.prune_image(SAMPLE_IMAGES[0], meta, backend="qwen-vl-utils")
    assert np.array_equal(model_inputs(row, meta)["pixel_values"],
                          model_inputs(row, meta, "torchvision")["pixel_values"])
    assert not np.array_equal(model_inputs(row, meta)["pixel_values"], model_inputs(row, meta, "pil")["pixel_values"])


# ------------------------------------------------------------- settings, metadata, refusals

def test_backend_is_recorded_in_the_metadata_and_the_report_title(tmp_path):
    out = tmp_path / "tv.arrow"
    code, stdout, stderr = cli("compress", SAMPLE_IMAGES[0], "-o", out, "--backend", "torchvision")
    assert code == 0, stderr
    assert "pixelprune compress: qwen3-vl, torchvision, pred_2d" in stdout
    meta = read_meta(read_arrow(out).schema)
    assert meta["backend"] == "torchvision"
    import PIL
    import torchvision

    assert meta["runtime"]["pillow"] == PIL.__version__
    assert meta["runtime"]["torch"] == torch.__version__ and meta["runtime"]["torchvision"] == torchvision.__version__
    qvu = tmp_path / "qvu.arrow"
    assert cli("compress", SAMPLE_IMAGES[0], "-o", qvu, "--backend", "qwen-vl-utils")[0] == 0
    meta = read_meta(read_arrow(qvu).schema)
    assert (meta["backend"], meta["min_pixels"]) == ("qwen-vl-utils", 4096)


def test_unknown_backend_is_refused():
    with pytest.raises(ConfigError, match="unknown backend 'opencv'"):
        pipeline.CodingConfig(backend="opencv")


def test_open_image_and_backend_load_keep_the_stored_orientation_for_qwen_vl_utils():
    data = images.by_name("jpeg_exif_mirror_rotate").data
    kept = backends.load(open_image(data), "qwen-vl-utils")
    with Image.open(io.BytesIO(data)) as stored:
        assert np.array_equal(np.asarray(kept), np.asarray(stored))


# ------------------------------------------------------------- prepare_inputs: the processor's class decides

PROMPT = "<|im_start|>user <|vision_start|><|image_pad|><|vision_end|> read<|im_end|><|im_start|>assistant"
SMALL = {"max_pixels": 160_000}


class Processor:
    """A processor as AutoProcessor returns one: a tokenizer and the image processor of one backend."""

    def __init__(self, kind: str, preset):
        import hf_models

        self.tokenizer = hf_models.tokenizer()
        self.image_processor = processor(kind, preset)


def _prepared(kind: str, backend: str):
    from pixelprune_cli.hf import prepare_inputs

    preset = backends.preset_for(backend, "qwen3-vl", **SMALL)
    meta = pipeline.CodingConfig(preset, backend=backend).to_meta()
    row = prune.prune_image(SAMPLE_IMAGES[0], meta, backend=backend)
    return prepare_inputs(Processor(kind, preset), PROMPT, [row], meta), row, meta


@pytest.mark.parametrize("backend,other", [("pil", "torchvision"), ("torchvision", "pil")])
def test_prepare_inputs_refuses_rows_coded_for_the_other_processor_class(backend, other):
    with pytest.raises(ValueError, match=rf"coded with --backend {backend} .* recode with --backend {other}") as caught:
        _prepared(other, backend)
    assert "\n" not in str(caught.value)
    inputs, row, meta = _prepared(backend, backend)  # the matching class is taken, with its own float steps
    assert torch.equal(inputs["pixel_values"], torch.from_numpy(model_inputs(row, meta, backend)["pixel_values"]))


@pytest.mark.parametrize("kind", list(PROCESSOR_CLASSES))
def test_prepare_inputs_takes_qwen_vl_utils_rows_with_either_processor_class_and_its_float_steps(kind):
    inputs, row, meta = _prepared(kind, "qwen-vl-utils")
    assert torch.equal(inputs["pixel_values"], torch.from_numpy(model_inputs(row, meta, kind)["pixel_values"]))


def test_prepare_inputs_warns_once_naming_both_pillow_versions_across_the_resize_order_change(monkeypatch):
    import PIL

    from pixelprune_cli.hf import prepare_inputs

    preset = backends.preset_for("pil", "qwen3-vl", **SMALL)
    meta = pipeline.CodingConfig(preset).to_meta()
    row = prune.prune_image(SAMPLE_IMAGES[0], meta)
    for made, now, warned in (("12.3.0", "13.0.0", True), ("13.0.0", "12.3.0", True), ("13.0.0", "13.1.2", False),
                              ("11.0.0", "12.3.0", False)):
        monkeypatch.setattr(PIL, "__version__", now)
        old = {**meta, "runtime": {"pillow": made}}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prepare_inputs(Processor("pil", preset), PROMPT, [row], old)
        messages = [str(w.message) for w in caught if "Pillow" in str(w.message)]
        if warned:
            assert len(messages) == 1 and f"Pillow {made}" in messages[0] and f"Pillow {now}" in messages[0]
            assert "\n" not in messages[0]
        else:
            assert messages == []


def test_torchvision_backend_without_torchvision_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torchvision.transforms.v2", None)  # what an environment without it imports
    code, _, stderr = cli("compress", SAMPLE_IMAGES[0], "-o", tmp_path / "x.arrow", "--backend", "torchvision")
    assert code == 2
    one_line_error(stderr, "--backend torchvision", "pixelprune[torchvision]")
    assert not (tmp_path / "x.arrow").exists()


def test_show_draws_a_qwen_vl_utils_image_in_its_stored_orientation(tmp_path):
    source = tmp_path / "rotated.jpg"
    source.write_bytes(images.by_name("jpeg_exif_rotate_90").data)  # stored 300x180 (landscape), orientation 6
    sizes = {}
    for backend in ("pil", "qwen-vl-utils"):
        code, _, stderr = cli("show", source, "-o", tmp_path / f"{backend}.png", "--backend", backend)
        assert code == 0, stderr
        with Image.open(tmp_path / f"{backend}.png") as picture:
            sizes[backend] = picture.size
    assert sizes["pil"][0] < sizes["pil"][1]  # upright: portrait
    assert sizes["qwen-vl-utils"][0] > sizes["qwen-vl-utils"][1]  # as stored: landscape


def test_prune_image_takes_the_backend_of_the_metadata_and_refuses_another():
    meta = pipeline.CodingConfig(PRESETS["qwen3-vl"], backend="torchvision").to_meta()
    image = Image.fromarray(images.content(300, 410, 2))
    from_meta = prune.prune_image(image, meta)
    assert np.array_equal(np.asarray(from_meta["pixels"]),
                          np.asarray(prune.prune_image(image, "qwen3-vl", backend="torchvision")["pixels"]))
    assert not np.array_equal(np.asarray(from_meta["pixels"]), np.asarray(prune.prune_image(image, "qwen3-vl")["pixels"]))
    with pytest.raises(ConfigError, match="backend 'pil' differs from the metadata's 'torchvision'"):
        prune.prune_image(image, meta, backend="pil")
