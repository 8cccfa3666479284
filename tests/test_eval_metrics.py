"""The eval metrics on worked examples of the official definitions (DocVQA ANLS, ChartQA relaxed accuracy,
VQA accuracy, OCRBench substring match, ScreenSpot click in box), each value worked by hand."""

from __future__ import annotations

import pytest

from pixelprune_cli.errors import ConfigError, InputError
from pixelprune_cli.evaluation import clicks, metrics
from pixelprune_cli.evaluation.tasks import TASKS, parse_column_overrides, task_named
from pixelprune_cli.evaluation.vqa_accuracy import normalise_answer, vqa_accuracy


@pytest.mark.parametrize("prediction,answers,expected", [
    ("university of california", ["University of California"], 1.0),  # case folded
    ("  hello   world ", ["hello world"], 1.0),  # whitespace collapsed
    ("universty of california", ["university of california"], 1 - 1 / 24),  # one deletion in 24 characters
    ("abcx", ["abcd"], 0.75),
    ("abxy", ["abcd"], 0.0),  # normalised distance 0.5 is not under the threshold: 0
    ("abxyz", ["abcde"], 0.0),
    ("1,000", ["1000", "1,000"], 1.0),  # best over the gold answers
    ("", ["abc"], 0.0),
])
def test_anls_follows_the_docvqa_definition(prediction, answers, expected):
    assert metrics.anls(prediction, answers) == pytest.approx(expected)


@pytest.mark.parametrize("prediction,answer,expected", [
    ("104", "100", 1.0),  # 4% off
    ("105", "100", 1.0),  # exactly 5%
    ("106", "100", 0.0),
    ("12%", "0.12", 1.0),  # a percentage is a fraction
    ("0.125", "12%", 1.0),  # 4.2% off
    ("0", "0", 1.0),  # a gold 0 has no relative error: compared as text
    ("0.0", "0", 0.0),
    ("Yes", "yes", 1.0),  # text: exact, case aside
    ("yes.", "yes", 0.0),
    ("Paris", "100", 0.0),
])
def test_relaxed_accuracy_is_five_percent_on_numbers_exact_on_text(prediction, answer, expected):
    assert metrics.relaxed_accuracy(prediction, answer) == expected


def test_vqa_accuracy_averages_min_matches_over_three_across_left_out_annotators():
    three = ["cat"] * 3 + ["dog"] * 7
    assert vqa_accuracy("cat", three) == pytest.approx((3 * 2 / 3 + 7 * 1) / 10)  # 0.9
    one = ["cat"] + ["dog"] * 9
    assert vqa_accuracy("cat", one) == pytest.approx(9 * (1 / 3) / 10)  # 0.3
    assert vqa_accuracy("dog", ["dog"] * 4 + ["cat"] * 6) == 1.0
    assert vqa_accuracy("bird", three) == 0.0


@pytest.mark.parametrize("raw,normal", [
    ("Two", "2"), ("the cat", "cat"), ("dont", "don't"), ("yes.", "yes"), ("red, white", "red white"),
    ("1,000", "1000"), ("3.5", "3.5"), ("A dog!", "dog"),
])
def test_vqa_answers_are_normalised_as_the_vqa_evaluation_does(raw, normal):
    assert normalise_answer(raw) == normal


@pytest.mark.parametrize("prediction,answers,subset,expected", [
    ("The answer is Hello World", ["hello world"], None, 1.0),
    ("hello\nworld", ["Hello World"], None, 1.0),  # newlines read as spaces
    ("x^{2}", ["x ^ { 2 }"], "HME100k", 1.0),  # formulas: spaces removed
    ("x", ["X"], "HME100k", 0.0),  # the official code lower-cases only the prediction there
    ("nothing", ["hello"], None, 0.0),
])
def test_ocrbench_counts_a_gold_answer_inside_the_prediction(prediction, answers, subset, expected):
    assert metrics.ocrbench_match(prediction, answers, subset) == expected


BOX = [0.5, 0.5, 0.6, 0.6]


@pytest.mark.parametrize("prediction,family,expected", [
    ("[0.52, 0.51, 0.58, 0.59]", "qwen3_vl", 1.0),  # lmms-eval's prompt: fractions, box centre
    ("[0.10, 0.10, 0.20, 0.20]", "qwen3_vl", 0.0),
    ("<|box_start|>(500,500),(600,600)<|box_end|>", "qwen3_vl", 1.0),  # 0-1000: centre (0.55, 0.55)
    ("<|box_start|>(500,500),(600,600)<|box_end|>", "qwen2_vl", 1.0),
    ("(550, 560)", "qwen3_vl", 1.0),  # a point
    ("(352, 264)", "qwen2_5_vl", 1.0),  # absolute pixels of the 640x480 image seen: (0.55, 0.55)
    ("(352, 264)", "qwen3_vl", 0.0),  # the same numbers read as 0-1000 miss
    ("(0.5, 0.5)", "qwen2_5_vl", 1.0),  # the box's corner: edges count
    ("no idea", "qwen3_vl", 0.0),
])
def test_click_in_box_reads_each_familys_coordinates(prediction, family, expected):
    assert clicks.click_in_box(prediction, BOX, family, (640, 480)) == expected


def test_tasks_find_their_columns_and_name_what_is_missing():
    chartqa = task_named("chartqa")
    assert chartqa.resolve_columns(["image", "query", "label"], {}, "t.parquet") == {"question": "query",
                                                                                     "answers": "label"}
    assert chartqa.resolve_columns(["image", "q", "label"], {"question": "q"}, "t") == {"question": "q",
                                                                                       "answers": "label"}
    with pytest.raises(InputError, match=r"t.parquet: no column for task docvqa's answers \('answers'\); "
                                         r"the table has image, question"):
        TASKS["docvqa"].resolve_columns(["image", "question"], {}, "t.parquet")
    assert TASKS["ocrbench"].resolve_columns(["question", "answer"], {}, "t") == {"question": "question",
                                                                                 "answers": "answer"}
    with pytest.raises(ConfigError, match="no role colour"):
        TASKS["docvqa"].resolve_columns(["question", "answers"], {"colour": "x"}, "t")
    with pytest.raises(ConfigError, match="ROLE=NAME"):
        parse_column_overrides(["question"])


def test_prompts_are_lmms_evals():
    assert TASKS["docvqa"].prompt("What is the date?") == ("What is the date?\nAnswer the question using a single "
                                                           "word or phrase.")
    assert TASKS["chartqa"].prompt("How many?") == "How many?\nAnswer the question using a single word or phrase."
    assert TASKS["ocrbench"].prompt(" what is written? ") == "what is written?"
    assert TASKS["screenspot"].prompt("close").endswith("corresponds to the command: close")
