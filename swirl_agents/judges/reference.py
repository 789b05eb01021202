"""Deterministic judges that grade steps against the data set's gold annotations.

They need no model, so they label large data sets instantly and serve as ground truth when
measuring LLM judges. Both read the question and what the tools actually returned from the state's
structure (:class:`~swirl_env.context.Context`): text a step wrote that looks like a tool result is
step text, and never counts as retrieved.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

from swirl_env.actions import parse_action
from swirl_env.context import Context
from swirl_env.data.types import Question
from swirl_env.scoring import normalize_answer, parse_number, qa_scores
from swirl_env.tools.base import ToolError
from swirl_env.tools.calculator import evaluate

from swirl_agents.judges.base import BAD, GOOD, Judgment, as_context, verdict

_ANNOTATION = re.compile(r"<<([^=<>]*)=([^<>]*)>>")
_OPERAND = re.compile(r"(?<![\w.,])\d[\d,]*(?:\.\d+)?(?![\w,]|\.\d)")


def _read_state(state: Context | str, by_text: dict[str, Question]) -> tuple[Question, list[tuple[str, str | None]]]:
    """The question a state asks and its earlier steps as ``(step text, tool result or None)``."""
    context = as_context(state)
    question = by_text.get(context.question)
    if question is None:
        raise KeyError(f"expected a question the judge was built with, actual {context.question[:80]!r}; "
                       "pass it in questions=[...] (e.g. env.unwrapped.questions)")
    return question, [(t.text, t.result) for t in context.steps]


def _tokens(text: str) -> set[str]:
    return set(normalize_answer(text).split())


def _aims_at(query: str, target: str) -> bool:
    """A query aims at a target article when it names at least half of the title's words (all, if 1–2)."""
    want = _tokens(target)
    if not want:
        return False
    hit = len(want & _tokens(query))
    return hit == len(want) or (len(want) > 2 and hit * 2 >= len(want))


_STOP = frozenset("a an the of in on at to for by with from is was were are who what which when where whose how "
                  "did does do that this as and or".split())


def _resolved(question: Question, text: str) -> str:
    """A hop's sub-question with ``#k`` references replaced by the answers of hop k."""
    return re.sub(r"#(\d+)", lambda m: question.hops[int(m.group(1)) - 1].answer
                  if 0 < int(m.group(1)) <= len(question.hops) else m.group(0), text)


def _open_hops(question: Question, missing: Sequence[str]):
    """Hops whose paragraph is still missing, their sub-questions resolved."""
    for hop in question.hops:
        if hop.paragraph_title in missing:
            yield dataclasses.replace(hop, question=_resolved(question, hop.question))


def _asks(query: str, hop) -> bool:
    """A query asks a hop's sub-question when it names at least half of its content words."""
    want = _tokens(hop.question.replace(">>", " ")) - _STOP
    return bool(want) and len(want & _tokens(query)) * 2 >= len(want)


def _retrieved(title: str, results: str, others: Sequence[str] = ()) -> bool:
    """Whether a passage of ``results`` (rendered ``title: text``, one per line) is the article ``title``.

    A passage of a longer known title that starts the same way ("Black Rebel Motorcycle Club: Live"
    for "Black Rebel Motorcycle Club") does not count.
    """
    head = f"{title}: "
    longer = [f"{o}: " for o in others if len(o) > len(title) and o.startswith(head)]
    for line in results.splitlines():
        if line.startswith(head) and not any(line.startswith(lo) for lo in longer):
            return True
    return False


def _mentions(results: str, answers: Sequence[str]) -> bool:
    """Whether the retrieved text states a gold answer as whole words (never a bare yes/no: that needs every article)."""
    text = f" {normalize_answer(results)} "
    return any(a and a not in ("yes", "no") and f" {a} " in text for a in map(normalize_answer, answers))


class ReferenceQAJudge:
    """Gold-guided judge for multi-hop QA.

    Rules:
        * An article is retrieved when a tool result holds a passage ``title: text`` with its title.
        * A search is GOOD iff it aims at a supporting article not yet retrieved: the query names
          at least half of that article's title words (all of them for one- or two-word titles),
          or, for data sets with decompositions (MuSiQue), half the content words of the
          sub-question that article answers, with ``#k`` replaced by hop k's answer.
          Searching once every supporting article is in the context is BAD (it should answer).
        * An answer is GOOD iff it is right (exact match, or F1 ≥ 0.8, against any gold alias)
          and supported: every supporting article was retrieved, or the gold answer appears (as
          whole words; never for yes/no) in the retrieved text. A right guess before the evidence is BAD.
        * A malformed step or a calculation is BAD.

    Example:
        >>> from swirl_env import context as ctx
        >>> q = Question("h", "Who directed The Amber Gate?", ("Velmora Quint",), "hotpotqa",
        ...              supporting_facts=(("The Amber Gate", 0),))
        >>> judge, start = ReferenceQAJudge([q]), ctx.render_start("Answer.", q.question)
        >>> judge.judge(start, "<search_query>The Amber Gate</search_query>").label
        'GOOD'
        >>> judge.judge(start, "<answer>Velmora Quint</answer>").label  # right, but a guess
        'BAD'
        >>> found = ctx.render("Answer.", q.question, [("<search_query>The Amber Gate</search_query>",
        ...                    "The Amber Gate: The Amber Gate is a film directed by Velmora Quint.")])
        >>> judge.judge(found, "<answer>Velmora Quint</answer>").label
        'GOOD'
    """

    id = "reference-qa"
    version = "3"

    def __init__(self, questions: Sequence[Question]):
        self.by_text = {q.question: q for q in questions}

    def judge(self, state: Context | str, action: str) -> Judgment:
        question, past = _read_state(state, self.by_text)
        results = "\n".join(r for _, r in past if r is not None)
        step = parse_action(action)
        if step.error:
            return verdict(BAD, f"malformed step: {step.error}", self)
        titles = [p.title for p in question.paragraphs]
        missing = [t for t in question.supporting_titles if not _retrieved(t, results, titles)]
        if step.tag == "search_query":
            if not missing:
                return verdict(BAD, "every supporting article is already retrieved; the step should answer", self)
            targets = [t for t in missing if _aims_at(step.argument, t)]
            targets += [h.paragraph_title for h in _open_hops(question, missing) if _asks(step.argument, h)]
            if targets:
                return verdict(GOOD, f"the query aims at the supporting article {targets[0]!r}", self)
            return verdict(BAD, f"the query aims at none of the missing articles {missing}", self)
        if step.tag == "answer":
            scores = qa_scores(step.argument, question.answers)
            if scores["exact_match"] < 1.0 and scores["f1"] < 0.8:
                return verdict(BAD, "the answer is wrong", self)
            if missing and not _mentions(results, question.answers):
                return verdict(BAD, f"right answer but unsupported: {missing} not retrieved", self)
            return verdict(GOOD, "the answer is right and supported by the retrieved text", self)
        return verdict(BAD, "a calculation does not help this question", self)


def _number(text: str) -> Fraction | None:
    """An annotated value (``12``, ``1,000``, ``$7.50``, ``35.00``) or a calculator result (``1/3 ≈ 0.33``)."""
    text = text.split("≈")[0].strip().replace(",", "").replace("$", "").rstrip("%").strip()
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


@lru_cache(maxsize=1 << 16)
def _value(expression: str) -> Fraction | None:
    """The exact rational value of ``expression`` by the calculator tool; None if it rejects it or the value is irrational."""
    try:
        result = evaluate(expression)
    except ToolError:
        return None
    if not result.is_Rational:
        return None
    return Fraction(int(result.p), int(result.q))


def _plan(question: Question) -> list[tuple[str, Fraction]]:
    """The gold chain: ``(expression, stated value)`` per annotation, then the final answer if no annotation gives it."""
    plan = []
    for expression, stated in _ANNOTATION.findall(question.solution):
        value = _number(stated)
        if value is None:
            value = _value(expression)
        if value is not None:
            plan.append((expression.strip(), value))
    gold = parse_number(question.answer)
    if gold is not None and all(v != gold for _, v in plan):
        plan.append(("", gold))
    return plan


def _substitute(expression: str, carried: dict[Fraction, Fraction]) -> str:
    """``expression`` with every number equal to a key of ``carried`` replaced by its value."""

    def replace(m: re.Match) -> str:
        value = _number(m.group(0))
        if value not in carried:
            return m.group(0)
        new = carried[value]
        return str(new.numerator) if new.denominator == 1 and new >= 0 else f"({new.numerator}/{new.denominator})"

    return _OPERAND.sub(replace, expression)


def _accepted(entry: tuple[str, Fraction], carried: dict[Fraction, Fraction]) -> set[Fraction]:
    """Values that compute a plan entry: as stated, as the calculator gives it, or redone with the context's values."""
    expression, stated = entry
    if not expression:
        return {stated, carried.get(stated, stated)}
    values = {stated, _value(expression), _value(_substitute(expression, carried)) if carried else None}
    return {v for v in values if v is not None}


def _follow(plan: list[tuple[str, Fraction]], computed: Sequence[Fraction]) -> tuple[dict[Fraction, Fraction], set[int]]:
    """Replay the context's calculations against the plan: (gold value -> value the context carries instead, entries done).

    A calculation that computes an open entry (its accepted values) completes it; any other takes
    the place of the earliest open entry, and its value is carried wherever that entry's value
    appears later in the chain.
    """
    carried: dict[Fraction, Fraction] = {}
    done: set[int] = set()
    for value in computed:
        open_ = [k for k in range(len(plan)) if k not in done]
        k = next((k for k in open_ if value in _accepted(plan[k], carried)), open_[0] if open_ else None)
        if k is None:
            continue
        done.add(k)
        expression, stated = plan[k]
        if value != stated and value != (_value(expression) if expression else stated):
            carried[stated] = value
    return carried, done


class ReferenceMathJudge:
    """Gold-guided judge for math word problems (GSM8K ``<<expr=value>>`` annotations).

    It judges a step given its context, as a process judge should: a step that correctly follows
    the procedure with a wrong value an earlier step computed is GOOD (the earlier step is the BAD one).

    Rules:
        * The gold chain is the annotated quantities in order, then the final answer when no
          annotation computes it. The context's calculations are replayed against it: one that
          computes a quantity not yet computed completes it; any other stands in for the earliest
          quantity not yet computed, and its value is *carried*: later quantities are redone with
          it wherever the replaced value appears in their expressions (and a carried final answer
          replaces the gold answer).
        * A calculation is GOOD iff the calculator accepts it and its value is a quantity of the
          chain not yet computed in the context: as annotated, as the calculator computes the
          annotated expression, or redone with the carried values. Recomputing a quantity the
          context already shows is BAD (no progress).
        * An answer is GOOD iff it equals the gold answer numerically, or the value the context
          carries in place of the gold answer; an intermediate value is BAD.
        * A malformed step or a search is BAD.

    Example:
        >>> from swirl_env import context as ctx
        >>> q = Question("m", "Tom has 3 bags of 4 apples and eats 2. How many are left?", ("10",), "gsm8k",
        ...              solution="He has 3*4=<<3*4=12>>12 apples. 12-2=<<12-2=10>>10 are left.")
        >>> judge, start = ReferenceMathJudge([q]), ctx.render_start("Solve.", q.question)
        >>> judge.judge(start, "<math_exp>3*4</math_exp>").label, judge.judge(start, "<math_exp>3*5</math_exp>").label
        ('GOOD', 'BAD')
        >>> misread = ctx.render("Solve.", q.question, [("<math_exp>3*5</math_exp>", "15")])
        >>> judge.judge(misread, "<math_exp>15-2</math_exp>").label  # right step, earlier wrong value
        'GOOD'
    """

    id = "reference-math"
    version = "2"

    def __init__(self, questions: Sequence[Question]):
        self.by_text = {q.question: q for q in questions}
        self._plans = {q.question: _plan(q) for q in questions}

    def judge(self, state: Context | str, action: str) -> Judgment:
        question, past = _read_state(state, self.by_text)
        step = parse_action(action)
        if step.error:
            return verdict(BAD, f"malformed step: {step.error}", self)
        if step.tag not in ("answer", "math_exp"):
            return verdict(BAD, "a search does not help this problem", self)
        plan = self._plans[question.question]
        computed = [v for text, result in past if parse_action(text).tag == "math_exp"
                    and result is not None and (v := _number(result)) is not None]
        carried, done = _follow(plan, computed)
        if step.tag == "answer":
            return self._judge_answer(question, step.argument, carried)
        value = _value(step.argument)
        if value is None:
            return verdict(BAD, "the calculator rejects the expression or gives no exact number", self)
        if any(value in _accepted(plan[k], carried) for k in range(len(plan)) if k not in done):
            return verdict(GOOD, f"computes {value}, a quantity of the gold solution not yet computed", self)
        if any(value in _accepted(plan[k], carried) for k in done):
            return verdict(BAD, f"computes {value} again: the context already shows it", self)
        return verdict(BAD, f"computes {value}, which is in no step of the gold solution", self)

    def _judge_answer(self, question: Question, answer: str, carried: dict[Fraction, Fraction]) -> Judgment:
        value = parse_number(answer)
        golds = {g for a in question.answers if (g := parse_number(a)) is not None}
        if value in golds:
            return verdict(GOOD, "the answer equals the gold answer", self)
        if value is not None and any(carried.get(g) == value for g in golds):
            return verdict(GOOD, f"the answer {value} follows from the values computed in the context", self)
        return verdict(BAD, "the answer is not the gold answer", self)
