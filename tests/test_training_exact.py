"""PrunedCollator's batches on tiny random Qwen2-VL, Qwen2.5-VL and Qwen3-VL models: loss and gradients are exact.

The oracle (tests/hf_models.py) is the unmodified model on the full images
with the dropped tokens masked out of every attention. The loss of
`enable(model)(**collator(rows))` must equal the oracle's cross-entropy over
the same labels at the same (kept and text) tokens within 1e-5, and every
parameter's gradient within 1e-3 relative, on a padded batch that holds a
one-image row and a two-image row, and on one of a 2-image and a 3-image row
that `compress` coded from a TRL `images` column and `load_cache` read.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch, transformers) is not installed")
pytest.importorskip("transformers", reason="the train extra (torch, transformers) is not installed")

from PIL import Image  # noqa: E402

from pixelprune_cli import prune_image  # noqa: E402
from pixelprune_cli.hf import enable  # noqa: E402
from pixelprune_cli.training.collator import IGNORE, PrunedCollator  # noqa: E402

import hf_models as tiny  # noqa: E402
from conftest import SAMPLES  # noqa: E402

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
MAX_PIXELS = 160_000
IMAGE = {"type": "image"}


def say(role, *items):
    return {"role": role, "content": [{"type": "text", "text": i} if isinstance(i, str) else i for i in items]}


# A one-image row and a two-image row of different lengths (so the batch is padded), two assistant turns in one.
CONVERSATIONS = [
    (["form.png"], [say("user", IMAGE, "describe the page"), say("assistant", "a form .")]),
    (["table.png", "slide.png"], [say("user", IMAGE, "and", IMAGE, "what does this table say ?"),
                                  say("assistant", "a table"), say("user", "and the chart ?"),
                                  say("assistant", "a chart of the form !")]),
]


def open_image(name):
    with Image.open(SAMPLES / name) as image:
        image.load()
        return image


def training_rows(preset):
    rows = []
    for names, messages in CONVERSATIONS:
        images = [prune_image(SAMPLES / name, preset=preset) for name in names]
        rows.append({"id": "+".join(names), "messages": messages, "images": images})
    return rows


def oracle_loss(model, family, preset, tok, rows, batch, conversations=CONVERSATIONS):
    """The masked full model's cross-entropy over the collator's labels, token for token at the kept and text tokens."""
    texts = [tok.apply_chat_template(row["messages"], tokenize=False) for row in rows]
    images = [open_image(name) for names, _ in conversations for name in names]
    full = tiny.full_inputs(tok, preset, texts, images)
    oracle = tiny.masked_forward(model, family, full, [image for row in rows for image in row["images"]])
    total, count = 0.0, 0
    for b in range(len(rows)):
        logits = oracle.logits[b, oracle.attention_mask[b].bool()]
        labels = batch["labels"][b, batch["attention_mask"][b].bool()]
        assert logits.shape[0] == labels.shape[0]
        shifted = labels[1:]
        total = total + torch.nn.functional.cross_entropy(logits[:-1].float(), shifted, ignore_index=IGNORE,
                                                          reduction="sum")
        count += int((shifted != IGNORE).sum())
    return total / count


def gradients(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_and_gradients_equal_the_masked_full_model(family):
    preset = tiny.small_preset(family, MAX_PIXELS)
    tok = tiny.tokenizer()
    rows = training_rows(preset)
    assert all(image["kept"] < image["tokens"] for row in rows for image in row["images"])
    batch = PrunedCollator(tok, preset.to_meta())(rows)
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]  # the first row is padded
    check_against_the_oracle(family, preset, tok, rows, batch, CONVERSATIONS)


# Two samples of 2 and 3 images, as TRL stores them (an `images` list column), coded into one row each.
TRAJECTORIES = [
    (["form.png", "table.png"], [say("user", IMAGE, "and", IMAGE, "describe the page"), say("assistant", "a form .")]),
    (["slide.png", "chart.png", "gui_window.png"], [say("user", IMAGE, "what does this say ?"), say("assistant", "a slide"),
                                                    say("user", IMAGE, IMAGE, "and these ?"),
                                                    say("assistant", "a chart of the form !")]),
]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_compressed_multi_image_rows_from_load_cache_train_exactly_as_the_masked_full_model(family, tmp_path):
    pytest.importorskip("datasets", reason="the train extra (datasets) is not installed")
    from pixelprune_cli.training import load_cache

    preset = tiny.small_preset(family, 100_000)  # five images: smaller, so the full-model oracle stays quick
    tok = tiny.tokenizer()
    output = tiny.multi_image_cache(tmp_path, preset, TRAJECTORIES, "cache.arrow")
    stored = list(load_cache(output))
    assert [len(row["kept"][0]) for row in stored] == [2, 3]  # one row per sample, its images in a list
    batch = PrunedCollator(tok, output)(stored)
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]  # the first row is padded
    assert len(batch["image_grid_thw"]) == 5 and int(batch["image_kept_mask"].sum()) < len(batch["image_kept_mask"])
    alone = [{"messages": messages, "images": [prune_image(SAMPLES / name, preset=preset) for name in names]}
             for names, messages in TRAJECTORIES]  # the oracle's kept tokens: each image coded alone
    check_against_the_oracle(family, preset, tok, alone, batch, TRAJECTORIES)


def check_against_the_oracle(family, preset, tok, rows, batch, conversations):
    """Loss within 1e-5 and every gradient within 1e-3 relative of the masked full model's, on the same labels."""
    model = enable(tiny.tiny_model(family))
    ours = model(**batch).loss
    ours.backward()
    ours_grads = gradients(model)
    model.zero_grad(set_to_none=True)
    theirs = oracle_loss(model, family, preset, tok, rows, batch, conversations)
    theirs.backward()
    their_grads = gradients(model)

    print(f"{family}: loss {ours.item():.6f}, oracle {theirs.item():.6f}")
    assert abs(ours.item() - theirs.item()) <= 1e-5
    assert ours_grads.keys() == their_grads.keys()
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0  # the ViT is trained too
    worst = 0.0
    for name, grad in their_grads.items():
        scale = float(grad.abs().max())
        diff = float((ours_grads[name] - grad).abs().max())
        worst = max(worst, diff / scale if scale else diff)
        assert diff <= 1e-3 * scale + 1e-9, name
    print(f"{family}: worst relative gradient difference {worst:.2e}")


def test_labels_are_the_assistant_turns_only_by_default_and_every_text_token_on_request():
    preset = tiny.small_preset("qwen3_vl", MAX_PIXELS)
    tok = tiny.tokenizer()
    rows = training_rows(preset)
    assistant = PrunedCollator(tok, preset.to_meta())(rows)
    everything = PrunedCollator(tok, preset.to_meta(), train_on="all")(rows)
    trained = tok.decode(assistant["labels"][1][assistant["labels"][1] != IGNORE])
    assert trained.split() == "a table <|im_end|> a chart of the form ! <|im_end|>".split()
    image = assistant["input_ids"] == tiny.TOKEN_IDS["image_token_id"]
    for batch in (assistant, everything):
        assert (batch["labels"][image] == IGNORE).all()
        assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()
    text = (everything["attention_mask"] == 1) & ~image
    assert torch.equal(everything["labels"][text], everything["input_ids"][text])
    assert int(image.sum()) == sum(image["kept"] for row in rows for image in row["images"])
