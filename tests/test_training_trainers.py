"""TRL's SFTTrainer and transformers' Trainer train a tiny Qwen3-VL on a pixelprune cache through PrunedCollator.

The model must visibly learn the small set: the loss of the last steps well
below that of the first ones. The rows stream from `load_cache` as they are
(skip_prepare_dataset, remove_unused_columns=False): the collator makes the
batches.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch, transformers, trl, datasets) is not installed")
transformers = pytest.importorskip("transformers", reason="the train extra is not installed")
pytest.importorskip("datasets", reason="the train extra (datasets) is not installed")
trl = pytest.importorskip("trl", reason="the train extra (trl) is not installed")

from pixelprune_cli.hf import enable  # noqa: E402
from pixelprune_cli.training import PrunedCollator, load_cache  # noqa: E402

import hf_models as tiny  # noqa: E402
from test_training_cache import compress, image_table  # noqa: E402

STEPS = 10
COMMON = dict(max_steps=STEPS, per_device_train_batch_size=2, learning_rate=3e-3, logging_steps=1, report_to="none",
              save_strategy="no", use_cpu=True, remove_unused_columns=False, dataloader_num_workers=0, seed=0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return compress(image_table(root / "data.parquet"), f"{root}/cache/", preset=tiny.small_preset("qwen3_vl", 80_000))


def losses(trainer):
    trainer.train()
    torch.manual_seed(0)
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def assert_learns(history):
    assert len(history) == STEPS
    first, last = sum(history[:3]) / 3, sum(history[-3:]) / 3
    print(f"loss: first steps {first:.3f}, last steps {last:.3f}")
    assert last < 0.5 * first


def test_trl_sft_trainer_learns_from_the_cache(cache, tmp_path):
    tok = tiny.tokenizer()
    args = trl.SFTConfig(output_dir=str(tmp_path), dataset_kwargs={"skip_prepare_dataset": True},
                         gradient_checkpointing=False, max_length=None, bf16=False, **COMMON)
    trainer = trl.SFTTrainer(model=enable(tiny.tiny_model("qwen3_vl")).train(), args=args,
                             train_dataset=load_cache(cache).shuffle(seed=0, buffer_size=4), processing_class=tok,
                             data_collator=PrunedCollator(tok, cache))
    assert_learns(losses(trainer))


def test_transformers_trainer_learns_from_the_cache(cache, tmp_path):
    tok = tiny.tokenizer()
    # A streamed dataset's batches must not be dispatched: accelerate would cut every tensor to the batch size
    # along its first axis, pixel_values and image_kept_mask included (as TRL's own trainers set it).
    args = transformers.TrainingArguments(output_dir=str(tmp_path), accelerator_config={"dispatch_batches": False},
                                          **COMMON)
    trainer = transformers.Trainer(model=enable(tiny.tiny_model("qwen3_vl")).train(), args=args,
                                   train_dataset=load_cache(cache), data_collator=PrunedCollator(tok, cache))
    assert_learns(losses(trainer))
