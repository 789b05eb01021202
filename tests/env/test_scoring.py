"""Outcome scores: HotpotQA's official EM/F1, aliases, numeric match, and answers that try to game them."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swirl_env.data.paths import iter_jsonl, read_json
from swirl_env.fuzz import scoring as scoring_fuzz
from swirl_env.fuzz.core import FAILURES
from swirl_env.fuzz.scoring import WRAPPERS, written
from swirl_env.scoring import (
    exact_match,
    f1_score,
    math_scores,
    normalize_answer,
    numeric_match,
    parse_number,
    qa_scores,
)
from tests.conftest import require_data


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The Beatles", "beatles"),
        ("  A  tale of TWO cities ", "tale of two cities"),
        ("an apple a day", "apple day"),
        ("theory of the atom", "theory of atom"),  # articles are whole words only
        ("U.S.A.", "usa"),
        ("the-end", "theend"),  # punctuation goes first, so 'the' is no longer a word
        ("Smith & Wesson", "smith wesson"),
        ("A.P.J. Abdul Kalam", "apj abdul kalam"),
        ("A. P. J. Abdul Kalam", "p j abdul kalam"),  # the official rule drops the initial 'A'
        ("$1,000.50", "100050"),
        ("", ""),
    ],
)
def test_normalize_answer_is_hotpotqa_official(text, normalized):
    assert normalize_answer(text) == normalized


@pytest.mark.parametrize(
    "prediction, gold, em, f1",
    [
        ("the Beatles", "Beatles", 1.0, 1.0),
        ("Barack Obama", "Obama", 0.0, 2 / 3),
        ("Obama", "Barack Obama", 0.0, 2 / 3),
        ("Paris, London, Berlin", "Paris", 0.0, 0.5),  # a list of guesses is not an exact match
        ("yes", "no", 0.0, 0.0),
        ("yes", "Yes.", 1.0, 1.0),
        ("yes sir", "yes", 0.0, 0.0),  # gold is yes/no and differs: 0, though token F1 would be 2/3
        ("yes", "yes sir", 0.0, 0.0),  # prediction is yes/no and differs: 0
        ("noanswer", "no answer", 0.0, 0.0),
        ("", "Paris", 0.0, 0.0),
        ("", "", 1.0, 0.0),  # as the official script: no common token, F1 0
        ("new new york", "new york", 0.0, 0.8),  # tokens count with multiplicity
    ],
)
def test_exact_match_and_f1_table(prediction, gold, em, f1):
    assert exact_match(prediction, gold) == em
    assert f1_score(prediction, gold) == pytest.approx(f1)


def test_qa_scores_take_the_best_alias_and_refuse_a_bare_string():
    assert qa_scores("Big Apple", ["New York City", "the Big Apple"]) == {"exact_match": 1.0, "f1": 1.0}
    assert qa_scores("New York", ["New York City", "NYC"]) == {"exact_match": 0.0, "f1": pytest.approx(0.8)}
    assert qa_scores("Paris", []) == {"exact_match": 0.0, "f1": 0.0}
    with pytest.raises(TypeError, match=r"pass \['Paris'\]"):
        qa_scores("Paris", "Paris")


@pytest.mark.parametrize(
    "text, value",
    [
        ("72", 72), ("72.0", 72), ("72.00", 72), ("$72", 72), ("$72.50", Fraction(145, 2)),
        ("1,000", 1000), ("1,234,567.89", Fraction(123456789, 100)), ("-3", -3), ("−3", -3),
        (".5", Fraction(1, 2)), ("3/4", Fraction(3, 4)), ("3 / 4", Fraction(3, 4)), ("1.5e3", 1500),
        ("50%", 50),  # GSM8K's gold for "what percent" is the plain number
        ("The answer is 18 dollars.", 18), ("18.", 18),
        ("5 apples cost $20", 20),  # the last number
        ("10-15", 15),  # a hyphen, not a minus
        ("x = -3", -3),
        ("1/3 ≈ 0.3333333333", Fraction(3333333333, 10**10)),  # a calculator result: its decimal
        ("", None), ("none", None), ("five", None), ("1/0", None), ("1e99999", None),
        # a grouped number followed by the sentence's own comma (was read as 1)
        ("1,080,", 1080), ("$1,080, in total", 1080), ("-1,080,", -1080), ("1,080,000,", 1080000),
        ("12,345.67, roughly", Fraction(1234567, 100)), ("($1,080).", 1080), ("1,080;", 1080),
        ("-$1,080", -1080), ("$-1,080", -1080), ("-€3.50", Fraction(-7, 2)),
        ("1,0800", 1),  # not a grouped number: its first digits only, never 10800 or 1080
    ],
)
def test_parse_number_table(text, value):
    assert parse_number(text) == value


@given(
    st.integers(-10**9, 10**9),
    st.sampled_from([0, Fraction(1, 2), Fraction(1, 4), Fraction(3, 100)]),
    st.booleans(),
    st.sampled_from(WRAPPERS),
)
def test_a_correct_answer_in_common_wrapping_scores_one(whole, cents, grouped, wrapper):
    value = whole + (cents if whole >= 0 else -cents)
    answer = wrapper.format(written(value, grouped))
    assert parse_number(answer) == value, answer
    assert math_scores(answer, [written(value, not grouped)]) == {"exact_match": 1.0}, answer
    assert numeric_match(answer, str(value + 1)) == 0.0


@given(st.integers(1000, 10**15), st.sampled_from(WRAPPERS))
def test_thousands_grouped_numbers_read_whole(n, wrapper):
    assert parse_number(wrapper.format(f"{n:,}")) == n
    assert parse_number(f"I had 3 apples, then {n:,}, in total.") == n  # the last number, whole


@given(st.text(max_size=60))
def test_parse_number_never_raises_and_numeric_match_is_symmetric_on_numbers(text):
    value = parse_number(text)
    assert value is None or isinstance(value, Fraction)
    if value is not None:
        assert numeric_match(text, str(value)) == numeric_match(str(value), text) == 1.0


@given(st.randoms(use_true_random=False))
def test_fuzzed_answers_score_as_they_must(rng):
    case = scoring_fuzz.random_case(rng)
    assert scoring_fuzz.check_scores(case, bound=float("inf")).kind not in FAILURES, case


@given(st.text(max_size=40), st.text(max_size=40))
def test_qa_scores_are_bounded_and_exact_match_implies_full_f1(prediction, gold):
    scores = qa_scores(prediction, [gold])
    assert 0.0 <= scores["f1"] <= 1.0 and scores["exact_match"] in (0.0, 1.0)
    if scores["exact_match"] == 1.0 and normalize_answer(gold):
        assert scores["f1"] == 1.0
    assert normalize_answer(normalize_answer(prediction)) == normalize_answer(prediction)


@pytest.mark.parametrize(
    "prediction, gold, match",
    [
        ("72", "72", 1.0), ("72.0", "72", 1.0), ("72.00", "72", 1.0), ("$72", "72", 1.0),
        ("1,000", "1000", 1.0), ("1000", "1,000", 1.0), ("The answer is 18.", "18", 1.0),
        ("0.5", "1/2", 1.0), ("71.99", "72", 0.0), ("-72", "72", 0.0), ("seventy-two", "72", 0.0),
        ("", "72", 0.0), ("", "", 0.0),  # nothing parses: no match, even against nothing
    ],
)
def test_numeric_match_table(prediction, gold, match):
    assert numeric_match(prediction, gold) == match


def test_lists_of_guesses_do_not_score():
    assert numeric_match(" ".join(str(i) for i in range(1, 101)), "42") == 0.0
    assert math_scores("40, 41, 43, 44", ["42"]) == {"exact_match": 0.0}
    assert qa_scores("Paris, London, Berlin", ["Paris"])["exact_match"] == 0.0


def test_math_scores_take_the_best_gold():
    assert math_scores("$18.00", ["18"]) == {"exact_match": 1.0}
    assert math_scores("18", ["17", "18.0"]) == {"exact_match": 1.0}
    assert math_scores("18", []) == {"exact_match": 0.0}


# --- real data -------------------------------------------------------------------------------------


def test_hotpotqa_dev_gold_scores_one_and_yes_no_flips_score_zero():
    questions = read_json(require_data("hotpotqa/hotpot_dev_distractor_subset.json.gz"))
    answers = [q["answer"] for q in questions]
    yes_no = [a for a in answers if normalize_answer(a) in ("yes", "no")]
    assert len(yes_no) >= 50  # measured: 43 yes, 33 no
    for gold in answers:
        assert qa_scores(gold, [gold]) == {"exact_match": 1.0, "f1": 1.0}, gold
    for gold in yes_no:
        flipped = "no" if normalize_answer(gold) == "yes" else "yes"
        assert qa_scores(flipped, [gold]) == {"exact_match": 0.0, "f1": 0.0}, gold
    for gold in answers:
        if normalize_answer(gold) not in ("yes", "no"):
            assert qa_scores("yes", [gold]) == {"exact_match": 0.0, "f1": 0.0}, gold


def test_hotpotqa_dev_wrong_answers_score_zero_exact_match():
    questions = read_json(require_data("hotpotqa/hotpot_dev_distractor_subset.json.gz"))
    answers = [q["answer"] for q in questions]
    shuffled = answers[:]
    random.Random(0).shuffle(shuffled)
    pairs = [(p, g) for p, g in zip(shuffled, answers) if normalize_answer(p) != normalize_answer(g)]
    assert len(pairs) > 1000
    assert all(qa_scores(p, [g])["exact_match"] == 0.0 for p, g in pairs)
    disjoint = [(p, g) for p, g in pairs if not set(normalize_answer(p).split()) & set(normalize_answer(g).split())]
    assert disjoint and all(qa_scores(p, [g])["f1"] == 0.0 for p, g in disjoint)


def test_musique_aliases_score_one_and_other_answers_zero():
    rows = [row for _, row in iter_jsonl(require_data("musique/musique_dev_subset_with_paragraphs.jsonl.gz"))]
    with_aliases = [row for row in rows if row["answer_aliases"]]
    assert len(with_aliases) >= 50  # measured: 61 of 200
    for row in rows:
        golds = [row["answer"], *row["answer_aliases"]]
        for alias in golds:
            assert qa_scores(alias, golds) == {"exact_match": 1.0, "f1": 1.0}, alias
    for row, other in zip(rows, rows[1:] + rows[:1]):
        golds = [row["answer"], *row["answer_aliases"]]
        if all(normalize_answer(other["answer"]) != normalize_answer(g) for g in golds):
            assert qa_scores(other["answer"], golds)["exact_match"] == 0.0


@pytest.mark.parametrize("relpath", ["gsm8k/test.jsonl", "gsm8k/train.jsonl.gz"])
def test_gsm8k_golds_parse_and_match_themselves(relpath):
    golds = [row["answer"].split("####")[-1].strip() for _, row in iter_jsonl(require_data(relpath))]
    assert all(parse_number(g) is not None and parse_number(g).denominator == 1 for g in golds)
    for gold in golds:
        assert numeric_match(gold + ".0", gold) == 1.0, gold
        assert numeric_match(f"The answer is ${gold}.", gold) == 1.0, gold
        assert numeric_match(str(parse_number(gold) + 1), gold) == 0.0, gold
    for gold in golds[:: 1 if relpath.endswith(".jsonl") else 5]:  # grouped, then wrapped: 1,080, -> 1080
        grouped = f"{int(parse_number(gold)):,}"
        assert all(numeric_match(wrapper.format(grouped), gold) == 1.0 for wrapper in WRAPPERS), gold
    with_separators = [g for g in golds if "," in g]
    assert all(numeric_match(g.replace(",", ""), g) == 1.0 for g in with_separators)
    # README: 93 golds have thousands separators (measured: 14 in test, 79 in train).
    assert len(with_separators) == {"gsm8k/test.jsonl": 14, "gsm8k/train.jsonl.gz": 79}[relpath]
