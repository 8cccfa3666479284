"""VQA accuracy (TextVQA, VQAv2): min(1, matches / 3), averaged over the ten leave-one-out subsets of annotators.

Answers are normalised first as the VQA evaluation (EvalAI's answer
processor) does: newlines and tabs to spaces, punctuation removed or spaced,
number words to digits, articles dropped, common contractions restored.
"""

from __future__ import annotations

import re

_PUNCTUATION = list(";/[]\"{}()=+\\_-><@`,?!")
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_DIGITS = re.compile(r"(\d)(,)(\d)")
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {"aint": "ain't", "arent": "aren't", "cant": "can't", "couldnt": "couldn't", "didnt": "didn't",
                 "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't", "havent": "haven't",
                 "hes": "he's", "im": "i'm", "ive": "i've", "isnt": "isn't", "itd": "it'd", "itll": "it'll",
                 "lets": "let's", "shouldnt": "shouldn't", "thats": "that's", "theres": "there's",
                 "theyre": "they're", "theyve": "they've", "wasnt": "wasn't", "werent": "weren't",
                 "whats": "what's", "wont": "won't", "wouldnt": "wouldn't", "youre": "you're", "youve": "you've"}


def _punctuation(text: str) -> str:
    out = text
    for mark in _PUNCTUATION:
        if (mark + " " in text or " " + mark in text) or re.search(_COMMA_DIGITS, text) is not None:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out)


def normalise_answer(text: str) -> str:
    """An answer as the VQA evaluation compares it."""
    text = str(text).replace("\n", " ").replace("\t", " ").strip().lower()
    text = _punctuation(text)
    words = []
    for word in text.split():
        word = _NUMBERS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def vqa_accuracy(prediction: str, answers) -> float:
    """Mean over each annotator left out of min(1, (other annotators giving the prediction) / 3)."""
    gold = [normalise_answer(a) for a in (answers or [])]
    if not gold:
        return 0.0
    predicted = normalise_answer(prediction)
    scores = []
    for left_out in range(len(gold)):
        matches = sum(1 for k, answer in enumerate(gold) if k != left_out and answer == predicted)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)
