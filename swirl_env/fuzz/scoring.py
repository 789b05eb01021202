"""Fuzzing scoring: correct answers in many wrappings must score 1, wrong ones 0, noise never raise.

An answer is a number the generator knows (integer or decimal, negative or not, grouped with
thousands separators or not) inside a wrapping a model writes (currency, units, punctuation,
a sentence), or a QA answer against itself and a different gold, or random text.
"""

from __future__ import annotations

import random
import string
import time
from fractions import Fraction

from swirl_env.fuzz.core import Outcome
from swirl_env.scoring import math_scores, parse_number, qa_scores

WRAPPERS = ("{}", "${}", "{} dollars", "The answer is {}.", "{},", "({})", "{}!", "**{}**", "'{}'", '"{}"',
            "{}, in total", "= {}", "{} km.", "so {};", "[{}]", "{} USD", "about {}...", "€{}", "{}%", "{}\n",
            "Total: {} apples.", "-> {}", "{} (final)")
QA_WRAPPERS = ("{}", "{}.", "**{}**", "'{}'", '"{}"', "({})", "{}!", " {} ", "The {}", "{}?!", "[{}]")
"""Wrappings the official normalisation removes (punctuation, case, articles, spaces): still an exact match."""
_NOISE = string.ascii_letters + string.digits + string.punctuation + " \n\t−–,.$€%/" + "١٢٣٤" + "ⅷ"


def written(value: Fraction, grouped: bool) -> str:
    """``value`` as a person writes it: ``-1,234.5`` (grouped) or ``-1234.5``; denominators 1, 2, 4, 5, 10, 100."""
    sign, magnitude = ("-" if value < 0 else ""), abs(value)
    whole = int(magnitude)
    digits = f"{whole:,}" if grouped else str(whole)
    cents = magnitude - whole
    return sign + digits + (str(float(cents))[1:] if cents else "")


def random_case(rng: random.Random) -> tuple[str, str, str]:
    """``(kind, prediction, gold)``: ``match`` (must score 1), ``mismatch`` (must score 0), ``qa`` (an answer
    against itself: 1) or ``noise`` (must only not raise)."""
    r = rng.random()
    if r < 0.6:
        value = Fraction(rng.randint(-10**9, 10**9)) + rng.choice((0, Fraction(1, 2), Fraction(1, 4), Fraction(7, 100)))
        shown = rng.choice(WRAPPERS).format(written(value, rng.random() < 0.5))
        if rng.random() < 0.5:
            return "match", shown, written(value, rng.random() < 0.5)
        return "mismatch", shown, written(value + rng.choice((1, -1, Fraction(1, 100), 1000)), rng.random() < 0.5)
    if r < 0.8:
        words = " ".join(rng.choice(("Paris", "the Beatles", "1,080", "yes", "no", "Amber Gate", "é")) for _ in range(2))
        return "qa", rng.choice(QA_WRAPPERS).format(words), words
    return "noise", "".join(rng.choice(_NOISE) for _ in range(rng.randint(0, 80))), "".join(
        rng.choice(_NOISE) for _ in range(rng.randint(0, 20)))


def check_scores(case: tuple[str, str, str], bound: float = 1.0) -> Outcome:
    """Score one case; a right answer below 1, a wrong one above 0, or any exception is a failure."""
    kind, prediction, gold = case
    start = time.monotonic()
    try:
        if kind in ("match", "mismatch"):
            score = math_scores(prediction, [gold])["exact_match"]
        else:
            score = qa_scores(prediction, [gold])["exact_match"]
            parse_number(prediction)
    except Exception as error:  # noqa: BLE001 - nothing may escape scoring
        return Outcome("crash", f"{type(error).__name__}: {error}")
    if time.monotonic() - start > bound:
        return Outcome("hang", f"{time.monotonic() - start:.2f} s")
    expected = {"match": 1.0, "mismatch": 0.0, "qa": 1.0}.get(kind)
    if expected is not None and score != expected:
        return Outcome("wrong", f"{prediction!r} against gold {gold!r} scored {score}")
    return Outcome(kind)


def target() -> tuple:
    """(generator, checker) for scoring."""
    return random_case, check_scores
