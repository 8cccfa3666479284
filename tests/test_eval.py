"""`pixelprune eval` end to end on a tiny random Qwen3-VL checkpoint saved to disk (no weights, no hub).

The oracles: the full arm's answers are the unmodified model's `generate` on
the processor's inputs; a pruned arm's are the unmodified model's with the
dropped tokens masked out of every attention (tests/hf_models.py); a row that
keeps every token answers as the full arm; each score is the mean of its
predictions' scores.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="the hf extra (torch, transformers) is not installed")
pytest.importorskip("transformers", reason="the hf extra (torch, transformers) is not installed")
pytest.importorskip("torchvision", reason="transformers 5 builds Qwen-VL processors (their video processor) only "
                                          "with torchvision: the torchvision extra is not installed")

from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402

from pixelprune_cli import prune_image  # noqa: E402
from pixelprune_cli.cli.cli import main  # noqa: E402

import eval_checkpoints as checkpoints  # noqa: E402
import hf_models as tiny  # noqa: E402
from conftest import SAMPLES  # noqa: E402

FAMILY = "qwen3_vl"
MAX_PIXELS = 70_000  # about 70 tokens a page: quick, and over Qwen3-VL's min_pixels (65,536)
NEW_TOKENS = 4
FILES = ["form.png", "photo.jpg", "chart.png"]  # photo.jpg keeps every token at tau 0
TAUS = "0,0.05"
QUESTION = "what does this say ?"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    checkpoint, table, predictions = folder / "ckpt", folder / "docvqa.parquet", folder / "predictions.jsonl"
    checkpoints.save_checkpoint(checkpoint, FAMILY, MAX_PIXELS)
    images = [checkpoints.png_bytes(SAMPLES / name) for name in FILES] + [b"not an image"]
    checkpoints.write_table(table, images, {"question": [QUESTION] * 4,
                                            "answers": [["form"], ["page"], ["chart"], ["x"]]})
    result = CliRunner().invoke(main, ["eval", str(table), "--model", str(checkpoint), "--task", "docvqa",
                                       "--tau", TAUS, "--max-new-tokens", str(NEW_TOKENS), "--json",
                                       "--predictions", str(predictions), "--no-progress"])
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    return folder, checkpoint, table, predictions, result, lines


def answers(lines, arm):
    return {line["id"]: line["prediction"] for line in lines if line["arm"] == arm and line["error"] is None}


def unmodified(checkpoint):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(checkpoint).eval(), AutoProcessor.from_pretrained(checkpoint)


def processor_inputs(processor, name):
    with Image.open(SAMPLES / name) as image:
        image.load()
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION + "\nAnswer "
                                                 "the question using a single word or phrase."}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=[image], return_tensors="pt")
    inputs["mm_token_type_ids"] = (inputs["input_ids"] == tiny.TOKEN_IDS["image_token_id"]).int()
    return inputs


def decoded(processor, generated, prompt_length):
    return processor.batch_decode(generated[:, prompt_length:], skip_special_tokens=True)[0].strip()


def test_the_run_reports_every_arm_on_the_same_rows_and_counts_the_bad_row(run):
    _, checkpoint, _, _, result, lines = run
    assert result.exit_code == 1, result.output  # one row failed, the rest were scored
    report = json.loads(result.stdout)
    assert report["task"] == "docvqa" and report["model"] == str(checkpoint)
    assert [(a["name"], a["tau"]) for a in report["arms"]] == [("full", None), ("tau=0", 0.0), ("tau=0.05", 0.05)]
    for arm in report["arms"]:
        assert arm["n"] == 3 and arm["failed"] == 1
        assert set(answers(lines, arm["name"])) == {"0", "1", "2"}
        assert arm["errors"][0]["id"] == "3" and "not an image" in arm["errors"][0]["reason"]
    assert report["arms"][0]["kept"] == 1.0 and report["arms"][2]["kept"] < 1.0
    assert "row 3:" in result.stderr


def test_full_arm_answers_equal_generate_on_the_processors_inputs(run):
    _, checkpoint, _, _, _, lines = run
    model, processor = unmodified(checkpoint)
    full = answers(lines, "full")
    for k, name in enumerate(FILES):
        inputs = processor_inputs(processor, name)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
        assert full[str(k)] == decoded(processor, out, inputs["input_ids"].shape[1]), name


@pytest.mark.parametrize("tau", [0.0, 0.05])
def test_pruned_arm_answers_equal_the_model_with_dropped_tokens_masked(run, tau):
    _, checkpoint, _, _, _, lines = run
    model, processor = unmodified(checkpoint)
    preset = tiny.small_preset(FAMILY, MAX_PIXELS)
    pruned = answers(lines, f"tau={tau:g}")
    dropped_somewhere = False
    for k, name in enumerate(FILES):
        inputs = processor_inputs(processor, name)
        row = prune_image(SAMPLES / name, preset=preset, tau=tau, backend="torchvision")
        dropped_somewhere |= row["kept"] < row["tokens"]
        oracle = tiny.masked_oracle(model, FAMILY, dict(inputs), [row])
        with torch.no_grad():
            out = model.generate(input_ids=oracle.input_ids, attention_mask=oracle.attention_mask,
                                 position_ids=oracle.position_ids, mm_encoder_outputs={"image": oracle.image_features},
                                 max_new_tokens=NEW_TOKENS, do_sample=False)
        assert pruned[str(k)] == decoded(processor, out, oracle.input_ids.shape[1]), name
    assert dropped_somewhere


def test_a_row_that_keeps_every_token_answers_as_the_full_arm(run):
    lines = run[5]
    keep_all = next(line for line in lines if line["arm"] == "tau=0" and line["id"] == "1")
    assert keep_all["tokens"] == keep_all["full_tokens"]
    assert keep_all["prediction"] == answers(lines, "full")["1"]


def test_each_score_is_the_mean_of_its_predictions_scores(run):
    _, _, _, _, result, lines = run
    for arm in json.loads(result.stdout)["arms"]:
        scores = [line["score"] for line in lines if line["arm"] == arm["name"] and line["error"] is None]
        assert arm["score"] == pytest.approx(sum(scores) / len(scores))
        tokens = [line["tokens"] for line in lines if line["arm"] == arm["name"] and line["error"] is None]
        assert arm["tokens"] == pytest.approx(sum(tokens) / len(tokens))


def test_resume_runs_nothing_twice_and_reports_the_same(run):
    folder, checkpoint, table, predictions, result, lines = run
    copy = folder / "resumed.jsonl"
    kept_lines = predictions.read_text().splitlines(keepends=True)
    copy.write_text("".join(kept_lines[:-2]) + kept_lines[-2][:10])  # the last rows lost, one line cut short
    plot = folder / "plot.png"
    again = CliRunner().invoke(main, ["eval", str(table), "--model", str(checkpoint), "--task", "docvqa", "--tau",
                                      TAUS, "--max-new-tokens", str(NEW_TOKENS), "--json", "--predictions", str(copy),
                                      "--resume", "--plot", str(plot), "--no-progress"])
    assert again.exit_code == 1, again.output
    resumed = [json.loads(line) for line in copy.read_text().splitlines()]
    assert len(resumed) == len(lines)
    assert sorted((r["arm"], r["id"]) for r in resumed) == sorted((r["arm"], r["id"]) for r in lines)
    assert json.loads(again.stdout)["arms"][1]["score"] == json.loads(result.stdout)["arms"][1]["score"]
    with Image.open(plot) as picture:
        assert picture.format == "PNG"


def eval_refused(args):
    result = CliRunner().invoke(main, ["eval", *args, "--no-progress"])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    return message


def test_resume_refuses_predictions_of_another_task(run):
    _, checkpoint, table, predictions, _, _ = run
    before = predictions.read_text()
    message = eval_refused([str(table), "--model", str(checkpoint), "--task", "infovqa", "--predictions",
                            str(predictions), "--resume"])
    assert "predictions of task docvqa" in message and "not task infovqa" in message
    assert predictions.read_text() == before


def test_a_table_without_the_tasks_columns_is_refused_naming_them(run, tmp_path):
    checkpoint = run[1]
    table = tmp_path / "t.parquet"
    checkpoints.write_table(table, [checkpoints.png_bytes(SAMPLES / "form.png")], {"query": ["q"]})
    message = eval_refused([str(table), "--model", str(checkpoint), "--task", "docvqa"])
    assert "no column for task docvqa's question ('question'); answers ('answers')" in message


def test_a_checkpoint_that_is_not_qwen_vl_is_refused(run, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    message = eval_refused([str(run[2]), "--model", str(tmp_path), "--task", "docvqa"])
    assert "a llava checkpoint; pixelprune eval runs Qwen2-VL, Qwen2.5-VL or Qwen3-VL" in message


def test_cuda_asked_for_where_there_is_none_is_refused(run):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    message = eval_refused([str(run[2]), "--model", str(run[1]), "--task", "docvqa", "--device", "cuda"])
    assert "CUDA is not available" in message


def test_qwen2_5_vl_arms_equal_generate_and_the_masked_oracle(tmp_path):
    """Qwen2.5-VL's window attention and patch 14, one page: both arms as their oracles answer."""
    family, checkpoint, table = "qwen2_5_vl", tmp_path / "ckpt", tmp_path / "t.parquet"
    checkpoints.save_checkpoint(checkpoint, family, MAX_PIXELS)
    checkpoints.write_table(table, [checkpoints.png_bytes(SAMPLES / "form.png")],
                            {"question": [QUESTION], "answers": [["form"]]})
    predictions = tmp_path / "p.jsonl"
    result = CliRunner().invoke(main, ["eval", str(table), "--model", str(checkpoint), "--task", "docvqa", "--tau",
                                       "0.05", "--max-new-tokens", str(NEW_TOKENS), "--json", "--no-progress",
                                       "--predictions", str(predictions)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["arms"][1]["kept"] < 1.0
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    model, processor = unmodified(checkpoint)
    inputs = processor_inputs(processor, "form.png")
    row = prune_image(SAMPLES / "form.png", preset=tiny.small_preset(family, MAX_PIXELS), tau=0.05,
                      backend="torchvision")
    oracle = tiny.masked_oracle(model, family, dict(inputs), [row])
    with torch.no_grad():
        full = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
        masked = model.generate(input_ids=oracle.input_ids, attention_mask=oracle.attention_mask,
                                position_ids=oracle.position_ids, mm_encoder_outputs={"image": oracle.image_features},
                                max_new_tokens=NEW_TOKENS, do_sample=False)
    length = inputs["input_ids"].shape[1]
    assert answers(lines, "full")["0"] == decoded(processor, full, length)
    assert answers(lines, "tau=0.05")["0"] == decoded(processor, masked, length)
