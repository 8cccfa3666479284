"""Per-answer scores, as the benchmarks' official definitions give them (and lmms-eval reproduces).

Each function takes a prediction (the model's text) and the row's gold
answers and returns a float in [0, 1]; a task's score is their mean.
Pure Python, no model: tests/test_eval_metrics.py checks each on worked examples.
"""

from __future__ import annotations

ANLS_THRESHOLD = 0.5
RELAXED_TOLERANCE = 0.05


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _anls_text(text: str) -> str:
    return " ".join(str(text).strip().lower().split())


def anls(prediction: str, answers) -> float:
    """Average Normalized Levenshtein Similarity of one answer (DocVQA, InfoVQA; Biten et al. 2019).

    Against each gold answer, case-folded with whitespace collapsed:
    1 - distance / max(lengths), or 0 when that normalised distance is
    ANLS_THRESHOLD or more; the best over the gold answers.
    """
    predicted = _anls_text(prediction)
    best = 0.0
    for answer in _as_list(answers):
        gold = _anls_text(answer)
        longest = max(len(gold), len(predicted))
        distance = levenshtein(gold, predicted) / longest if longest else 0.0
        best = max(best, 1.0 - distance if distance < ANLS_THRESHOLD else 0.0)
    return best


def _number(text: str) -> float | None:
    """A float of the text, a trailing % read as a fraction ("12%" -> 0.12); None when not a number."""
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_accuracy(prediction: str, answers) -> float:
    """ChartQA's relaxed accuracy (Masry et al. 2022, sec. 5.1, after Methani et al. 2020).

    A numeric answer is right within 5% of a non-zero gold number; any other
    answer must equal the gold one, case aside. Best over the gold answers.
    """
    predicted = str(prediction).strip()
    for answer in _as_list(answers):
        gold = str(answer).strip()
        p, g = _number(predicted), _number(gold)
        if p is not None and g:
            if abs(p - g) / abs(g) <= RELAXED_TOLERANCE:
                return 1.0
        elif predicted.lower() == gold.lower():
            return 1.0
    return 0.0


def ocrbench_match(prediction: str, answers, dataset: str | None = None) -> float:
    """OCRBench: 1 when a gold answer occurs inside the prediction (Liu et al. 2023).

    Both are lower-cased (the gold answer only outside HME100k), stripped, and
    newlines read as spaces; for HME100k (handwritten formulas) every space is
    removed instead.
    """
    predicted = str(prediction).lower().strip()
    for answer in _as_list(answers):
        if dataset == "HME100k":
            gold = str(answer).strip().replace("\n", " ").replace(" ", "")
            inside = predicted.replace("\n", " ").replace(" ", "")
        else:
            gold = str(answer).lower().strip().replace("\n", " ")
            inside = predicted.replace("\n", " ")
        if gold in inside:
            return 1.0
    return 0.0


def _as_list(answers) -> list:
    if answers is None:
        return []
    if isinstance(answers, str):
        return [answers]
    return list(answers)
