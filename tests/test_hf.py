"""pixelprune_cli.hf on tiny random Qwen2-VL, Qwen2.5-VL and Qwen3-VL models (no weights, no hub).

The oracle (tests/hf_models.py) is the unmodified model on the full images
with the dropped tokens masked out of every attention; the enabled model on
pruned inputs must give the same logits at every kept image token and text
token, the same greedy continuation, and the full sequence's MRoPE ids.
"""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch", reason="the hf extra (torch, transformers) is not installed")
pytest.importorskip("transformers", reason="the hf extra (torch, transformers) is not installed")

from PIL import Image  # noqa: E402

from pixelprune_cli import api, prune_image  # noqa: E402
from pixelprune_cli.coding.pipeline import CodingConfig  # noqa: E402
from pixelprune_cli.coding.presets import resolve_preset  # noqa: E402
from pixelprune_cli.hf import enable, prepare_inputs  # noqa: E402
from pixelprune_cli.run.job import RunOptions  # noqa: E402

import hf_models as tiny  # noqa: E402
from conftest import ROOT, SAMPLES  # noqa: E402

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
MAX_PIXELS = 160_000  # about 150-200 tokens a page: real pages, CPU-sized
PROMPT = "<|im_start|>user <|vision_start|><|image_pad|><|vision_end|> {}<|im_end|><|im_start|>assistant"
# Two prompts of different lengths (so one is left-padded) over three pages with different kept counts;
# the second prompt holds two images.
BATCH_TEXTS = [
    PROMPT.format("describe the page"),
    "<|im_start|>user <|vision_start|><|image_pad|><|vision_end|> and <|vision_start|><|image_pad|><|vision_end|>"
    " what does this table say ?<|im_end|><|im_start|>assistant",
]
BATCH_FILES = ["form.png", "table.png", "slide.png"]
LOGIT_TOLERANCE = 1e-4


def open_images(names):
    images = []
    for name in names:
        with Image.open(SAMPLES / name) as image:
            image.load()
            images.append(image)
    return images


class Case:
    """One family's model, pruned rows and inputs, and the masked oracle on the full images."""

    def __init__(self, family, texts, files):
        self.family = family
        self.preset = tiny.small_preset(family, MAX_PIXELS)
        self.tokenizer = tiny.tokenizer()
        self.model = tiny.tiny_model(family)
        self.rows = [prune_image(SAMPLES / name, preset=self.preset) for name in files]
        self.full = tiny.full_inputs(self.tokenizer, self.preset, texts, open_images(files))
        self.oracle = tiny.masked_oracle(self.model, family, self.full, self.rows)
        self.inputs = prepare_inputs(self.tokenizer, texts, self.rows, self.preset.to_meta())
        enable(self.model)


@pytest.fixture(scope="module", params=FAMILIES)
def batch(request):
    return Case(request.param, BATCH_TEXTS, BATCH_FILES)


def test_batch_rows_are_pruned_by_different_amounts(batch):
    kept = [row["kept"] for row in batch.rows]
    assert all(row["kept"] < row["tokens"] for row in batch.rows)
    assert len(set(kept)) == len(kept)
    assert batch.inputs["attention_mask"][0].sum() < batch.inputs["attention_mask"].shape[1]  # left padding
    assert batch.inputs["attention_mask"][0, 0] == 0


def test_logits_equal_the_masked_full_model_at_kept_and_text_tokens(batch):
    with torch.no_grad():
        logits = batch.model(**batch.inputs).logits
    diff = tiny.compare_at_kept(batch.oracle, logits, batch.inputs["attention_mask"])
    print(f"{batch.family}: max abs logit diff vs masked oracle, batch of 2: {diff:.2e}")
    assert diff <= LOGIT_TOLERANCE


def test_a_single_page_equals_the_masked_full_model():
    for family in FAMILIES:
        case = Case(family, [PROMPT.format("read the form")], ["gui_window.png"])
        with torch.no_grad():
            logits = case.model(**case.inputs).logits
        diff = tiny.compare_at_kept(case.oracle, logits, case.inputs["attention_mask"])
        print(f"{family}: max abs logit diff vs masked oracle, one page: {diff:.2e}")
        assert diff <= LOGIT_TOLERANCE


def test_greedy_generation_equals_the_masked_full_models(batch):
    with torch.no_grad():
        ours = batch.model.generate(**batch.inputs, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    ours = ours[:, batch.inputs["input_ids"].shape[1]:]
    theirs = tiny.oracle_generate(batch.model, batch.oracle, 8)
    assert ours.shape == (2, 8)
    assert torch.equal(ours, theirs)


def test_image_positions_are_the_full_sequences_rope_ids_at_kept_tokens(batch):
    ours = batch.inputs["position_ids"]
    full = batch.oracle.position_ids
    for b in range(ours.shape[1]):
        mine = ours[:, b, batch.inputs["attention_mask"][b].bool()]
        reference = full[:, b, batch.oracle.attention_mask[b].bool()]
        assert torch.equal(mine, reference)
    image = batch.inputs["input_ids"] == tiny.TOKEN_IDS["image_token_id"]
    assert int(image.sum()) == sum(row["kept"] for row in batch.rows)


@pytest.mark.parametrize("family", FAMILIES)
def test_keep_all_row_gives_the_processors_logits(family):
    preset = tiny.small_preset(family, MAX_PIXELS)
    tok = tiny.tokenizer()
    row = prune_image(SAMPLES / "photo.jpg", preset=preset)
    assert row["kept"] == row["tokens"]
    text = [PROMPT.format("describe the page")]
    full = tiny.full_inputs(tok, preset, text, open_images(["photo.jpg"]))
    reference = tiny.tiny_model(family)
    with torch.no_grad():
        expected = reference(**full).logits
        got = enable(tiny.tiny_model(family))(**prepare_inputs(tok, text, [row], preset.to_meta())).logits
    assert got.shape == expected.shape
    diff = float((got - expected).abs().max())
    print(f"{family}: keep-all max abs logit diff vs processor inputs: {diff:.2e}")
    assert diff <= 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_enable_leaves_the_processors_own_inputs_exactly_unchanged_and_is_idempotent(family):
    preset = tiny.small_preset(family, MAX_PIXELS)
    tok = tiny.tokenizer()
    full = tiny.full_inputs(tok, preset, [PROMPT.format("describe the page")], open_images(["chart.png"]))
    model = tiny.tiny_model(family)
    with torch.no_grad():
        before = model(**full).logits
        generated_before = model.generate(**full, max_new_tokens=4, do_sample=False)
        features = model.model.get_image_features
        assert enable(enable(model)) is model
        enabled_features = model.model.get_image_features
        assert enable(model).model.get_image_features is enabled_features is not features
        after = model(**full).logits
        generated_after = model.generate(**full, max_new_tokens=4, do_sample=False)
    assert torch.equal(before, after)
    assert torch.equal(generated_before, generated_after)


def test_training_loss_on_pruned_inputs_backpropagates_to_the_vit():
    preset = tiny.small_preset("qwen3_vl", MAX_PIXELS)
    tok = tiny.tokenizer()
    rows = [prune_image(SAMPLES / name, preset=preset) for name in BATCH_FILES]
    inputs = prepare_inputs(tok, BATCH_TEXTS, rows, preset.to_meta())
    model = enable(tiny.tiny_model("qwen3_vl")).train()
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    labels = labels.masked_fill(inputs["mm_token_type_ids"] == 1, -100)
    loss = model(**inputs, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0


def test_prepare_inputs_refuses_a_placeholder_count_that_does_not_match_the_rows():
    preset = tiny.small_preset("qwen3_vl", MAX_PIXELS)
    row = prune_image(SAMPLES / "form.png", preset=preset)
    with pytest.raises(ValueError, match=r"hold 2 image placeholders .* but 1 rows"):
        prepare_inputs(tiny.tokenizer(), BATCH_TEXTS[1], [row], preset.to_meta())


def test_prepare_inputs_refuses_rows_coded_for_another_patch_size():
    class Processor:  # a processor whose image processor is Qwen2-VL's (patch 14)
        tokenizer = tiny.tokenizer()
        image_processor = tiny.image_processor(tiny.small_preset("qwen2_vl", MAX_PIXELS))

    row = prune_image(SAMPLES / "form.png", preset=tiny.small_preset("qwen3_vl", MAX_PIXELS))
    with pytest.raises(ValueError, match="patch_size is 14 but the rows were coded for preset 'qwen3-vl'"):
        prepare_inputs(Processor(), PROMPT.format("read"), [row], "qwen3-vl")


def _moved(values, at, value):
    values = list(values)
    values[at] = value
    return values


# How a row can lie about its image, each as prepare_inputs took it silently (or with a raw IndexError) before.
BAD_ROWS = {
    "kept_index past the image": lambda r: {"kept_index": _moved(r["kept_index"], -1, r["tokens"])},
    "kept_index far past the image": lambda r: {"kept_index": _moved(r["kept_index"], -1, 10**6)},
    "kept_index negative": lambda r: {"kept_index": _moved(r["kept_index"], 0, -1)},
    "kept_index unsorted": lambda r: {"kept_index": [r["kept_index"][1], r["kept_index"][0], *r["kept_index"][2:]]},
    "kept_index duplicated": lambda r: {"kept_index": _moved(r["kept_index"], 1, r["kept_index"][0])},
    "pixels one token short": lambda r: {"pixels": r["pixels"][:-1]},
    "only the columns the model needs, kept_index past": lambda r: {
        "kept_index": _moved(r["kept_index"], -1, r["tokens"]), "index_map": None, "width": None, "height": None,
        "tokens": None, "kept": None},
}


@pytest.mark.parametrize("how", BAD_ROWS)
def test_prepare_inputs_refuses_a_row_that_its_grid_cannot_hold(how):
    preset = tiny.small_preset("qwen3_vl", MAX_PIXELS)
    good = prune_image(SAMPLES / "form.png", preset=preset, image_id="form.png")
    bad = {**good, **BAD_ROWS[how](good)}
    with pytest.raises(ValueError) as refused:
        prepare_inputs(tiny.tokenizer(), BATCH_TEXTS[1], [good, bad], preset.to_meta())
    message = str(refused.value)
    assert "\n" not in message and message.startswith("image 1 of 2 ('form.png'): "), message
    prepare_inputs(tiny.tokenizer(), BATCH_TEXTS[1], [good, good], preset.to_meta())  # the good row passes


def test_prepare_inputs_refuses_rows_coded_for_another_preset_than_the_metadata_says():
    qwen2 = tiny.small_preset("qwen2_vl", MAX_PIXELS)
    row = prune_image(SAMPLES / "form.png", preset=qwen2)
    qwen3_meta = tiny.small_preset("qwen3_vl", MAX_PIXELS).to_meta()
    with pytest.raises(ValueError, match=r"image 0 of 1 .*grid_thw .* patches of 16 px .*another preset"):
        prepare_inputs(tiny.tokenizer(), PROMPT.format("read"), [row], qwen3_meta)
    without_sizes = {key: row[key] for key in ("grid_thw", "kept_index", "pixels")}
    without_sizes["grid_thw"] = [1, row["height"] // 16, row["width"] // 16]  # a grid that fits the wrong patches
    with pytest.raises(ValueError, match=r"pixels hold a value of 2352 bytes, not whole 32x32 px tokens of 3072"):
        prepare_inputs(tiny.tokenizer(), PROMPT.format("read"), [without_sizes], qwen3_meta)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_model_not_enabled_fails_on_pruned_inputs_instead_of_misreading_them(family):
    preset = tiny.small_preset(family, MAX_PIXELS)
    row = prune_image(SAMPLES / "form.png", preset=preset)
    assert row["kept"] < row["tokens"]
    inputs = prepare_inputs(tiny.tokenizer(), PROMPT.format("read"), [row], preset.to_meta())
    model = tiny.tiny_model(family)
    with torch.no_grad():
        with pytest.raises((RuntimeError, IndexError)):
            model(**inputs)
        with pytest.raises(ValueError, match="image_kept_mask"):
            model.generate(**inputs, max_new_tokens=2)


def test_enable_refuses_other_models():
    with pytest.raises(ValueError, match="supports qwen2_vl, qwen2_5_vl, qwen3_vl"):
        enable(torch.nn.Linear(2, 2))


def docs_examples() -> list[str]:
    """The python blocks of docs/models.md's "Feeding a model" section that call generate, in order."""
    section = (ROOT / "docs" / "models.md").read_text().split("## Feeding a model", 1)[1].split("\n## ", 1)[0]
    return [block for block in re.findall(r"```python\n(.*?)```", section, re.S) if ".generate(" in block]


@pytest.mark.parametrize("example,family,preset,output", [
    (0, "qwen3_vl", "qwen3-vl", "out.arrow"),
    (1, "qwen2_5_vl", "qwen2.5-vl", "out25.arrow"),
])
def test_docs_example_runs_as_written_on_a_tiny_model(tmp_path, monkeypatch, example, family, preset, output):
    """The docs' block runs verbatim; only `from_pretrained` is swapped for the tiny model and tokenizer."""
    import transformers

    code = docs_examples()[example]
    pages = [SAMPLES / "form.png", SAMPLES / "slide.png"]
    config = CodingConfig(resolve_preset(preset, max_pixels=MAX_PIXELS))  # `--max-pixels`: CPU-sized pages
    api.compress([str(p) for p in pages], str(tmp_path / output), config, run=RunOptions(workers=1, progress=False))
    model_class = type(tiny.tiny_model(family))
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", lambda *a, **k: tiny.tokenizer())
    monkeypatch.setattr(model_class, "from_pretrained", lambda *a, **k: tiny.tiny_model(family))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, f"docs/models.md example {example}", "exec"), namespace)
    inputs, rows = namespace["inputs"], namespace["rows"]
    assert isinstance(namespace["model"], model_class)
    assert int(inputs["image_kept_mask"].sum()) == sum(row["kept"] for row in rows) < sum(r["tokens"] for r in rows)
    assert namespace["output"].shape[1] > inputs["input_ids"].shape[1]


def test_readme_model_example_runs_as_written_on_a_tiny_model(monkeypatch):
    """The README's "Feed a model" block, pruning on the fly, runs verbatim; only `from_pretrained` is swapped."""
    import transformers

    section = (ROOT / "README.md").read_text().split("## Feed a model", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    model_class = type(tiny.tiny_model("qwen3_vl"))
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", lambda *a, **k: tiny.tokenizer())
    monkeypatch.setattr(model_class, "from_pretrained", lambda *a, **k: tiny.tiny_model("qwen3_vl"))
    monkeypatch.chdir(ROOT)  # the block names samples/form.png
    namespace = {}
    exec(compile(code, "README.md model example", "exec"), namespace)
    row, inputs = namespace["row"], namespace["inputs"]
    assert isinstance(namespace["model"], model_class)
    assert row["id"] == "form.png" and row["kept"] < row["tokens"]
    assert int(inputs["image_kept_mask"].sum()) == row["kept"]
    assert namespace["output"].shape[1] > inputs["input_ids"].shape[1]
