"""Outcome scores: exact match and F1 for QA, numeric match for maths. Pure functions.

QA follows the official HotpotQA script (``hotpot_evaluate_v1.py``) to the letter: the same
normalisation, the same token F1, the same rule that a yes/no/noanswer prediction or gold gets
F1 0 unless both are equal. Several gold answers (MuSiQue aliases, Bamboogle alternatives) score
the best of them. Nothing here rewards containment: ``"Paris, London, Berlin"`` is not an exact
match for ``"Paris"``.

Maths compares numbers, not strings: ``72``, ``72.0``, ``$72.00`` and ``72 dollars`` are equal, as
are ``1,000`` and ``1000``. An answer holding several numbers is read by its last one (see
:func:`parse_number`), so a list of guesses scores as its last guess only.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPECIAL = ("yes", "no", "noanswer")
_NUMBER = re.compile(
    r"(?<![\w./])(?<!\d,)(?P<sign>-)?[$€£]?"
    # A grouped number ends where no digit and no further ",ddd" group follows: "1,080," is 1080.
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d|,\d)|\d+)?(?P<frac>\.\d+)?"
    r"(?:(?<=\d)[eE](?P<exp>[-+]?\d+))?"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?"
)
_MAX_EXPONENT = 1000


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (official HotpotQA).

    Example:
        >>> normalize_answer("The  Eiffel-Tower!")
        'eiffeltower'
    """
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the normalised strings are equal, else 0.0.

    Example:
        >>> exact_match("the Beatles", "Beatles"), exact_match("Paris, London", "Paris")
        (1.0, 0.0)
    """
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token F1 of the normalised strings; 0 when either is yes/no/noanswer and they differ.

    Example:
        >>> f1_score("Barack Obama", "Obama"), f1_score("no", "yes")
        (0.6666666666666666, 0.0)
    """
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    same = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if same == 0:  # also when either side is empty, as in the official script
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def qa_scores(prediction: str, answers: Sequence[str]) -> dict[str, float]:
    """``exact_match`` and ``f1``, each the best over all gold answers and aliases (0 when there is none).

    Raises:
        TypeError: ``answers`` is a single string (it would be scored character by character).

    Example:
        >>> qa_scores("Big Apple", ["New York City", "the Big Apple"])
        {'exact_match': 1.0, 'f1': 1.0}
    """
    golds = _as_answers(answers)
    return {
        "exact_match": max((exact_match(prediction, g) for g in golds), default=0.0),
        "f1": max((f1_score(prediction, g) for g in golds), default=0.0),
    }


def parse_number(text: str) -> Fraction | None:
    """The number an answer states: its last number, exactly; None if it has none.

    Reads ``72``, ``72.00``, ``-3``, ``.5``, ``1,000`` (commas between digit triples are thousands
    separators, also before a comma of the sentence: ``$1,080, in total``), ``3/4``, ``1.5e3``,
    ``$72``, ``-$72``, ``50%`` (read as 50: GSM8K asks "what percent…" and
    its gold is the plain number) and ``1/3 ≈ 0.3333`` (a calculator result: the decimal, the last
    number). With several numbers the last one counts, as in the usual GSM8K evaluation
    (``The answer is 18`` is 18, ``5 apples cost $20`` is 20): the answer tag is expected to end
    with its result, and a list of guesses only ever scores its last guess. A minus sign right
    after a word character is a hyphen (``10-15`` ends with 15). Not read: number words, mixed
    numbers (``1 1/2`` reads as 1/2), space-separated thousands.

    Example:
        >>> [parse_number(s) for s in ("$1,000.50", "The answer is 18 dollars.", "3/4", "none")]
        [Fraction(2001, 2), Fraction(18, 1), Fraction(3, 4), None]
        >>> parse_number("$1,080, in total"), parse_number("-$5")
        (Fraction(1080, 1), Fraction(-5, 1))
    """
    last = None
    for m in _NUMBER.finditer(text.replace("−", "-")):
        if m.group("int") is None and m.group("frac") is None:
            continue
        last = m
    return None if last is None else _match_value(last)


def _match_value(m: re.Match) -> Fraction | None:
    value = Fraction((m.group("int") or "0").replace(",", "") + (m.group("frac") or ""))
    if m.group("exp"):
        if abs(int(m.group("exp"))) > _MAX_EXPONENT:
            return None
        value *= Fraction(10) ** int(m.group("exp"))
    if m.group("den"):
        denominator = Fraction(m.group("den"))
        if denominator == 0:
            return None
        value /= denominator
    return -value if m.group("sign") else value


def numeric_match(prediction: str, gold: str) -> float:
    """1.0 iff both parse (:func:`parse_number`) and are exactly equal, else 0.0.

    Example:
        >>> numeric_match("$72.00", "72"), numeric_match("1,000", "1000"), numeric_match("71.99", "72")
        (1.0, 1.0, 0.0)
    """
    pred, ref = parse_number(prediction), parse_number(gold)
    return float(pred is not None and pred == ref)


def math_scores(prediction: str, answers: Sequence[str]) -> dict[str, float]:
    """``exact_match``: :func:`numeric_match`, the best over gold answers (0 when there is none).

    Example:
        >>> math_scores("The answer is 18.", ["18"])
        {'exact_match': 1.0}
    """
    golds = _as_answers(answers)
    return {"exact_match": max((numeric_match(prediction, g) for g in golds), default=0.0)}


def _as_answers(answers: Sequence[str]) -> Sequence[str]:
    if isinstance(answers, str):
        raise TypeError(f"expected a sequence of gold answers, actual a single str {answers[:40]!r}; pass [{answers[:40]!r}]")
    return answers
