"""The reference maths agent: replay a solution's ``<<expr=value>>`` calculator annotations, then answer.

Step k is ``<math_exp>expr_k</math_exp>`` for the k-th annotation of ``Question.solution``; its
reasoning is the solution sentence holding the annotation, with the annotation and the value it
states removed ("Janet sells 16 - 3 - 4 duck eggs a day."). After the last annotation (or at the
last allowed step) the agent answers with the gold answer.

Mistakes (see :mod:`swirl_agents.agents.reference` for how they are drawn and annotated):

- ``wrong_expression``: an operand or an operator of the expression is changed so that its value
  differs. The agent then reads the wrong value from the calculator's result and carries it on:
  a later expression (and its reasoning) uses it wherever the annotation's original value
  appeared, and so does the final answer when it is that value. Those later steps are annotated
  ``{"mistake": "", "tainted": True}``.
- ``premature_answer``: answer with the latest intermediate value (or a number of the problem)
  while computations remain.
- ``wrong_answer``: at the answer step, give a number off from the right one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from swirl_env.data.types import Question
from swirl_env.tools.base import ToolError
from swirl_env.tools.calculator import evaluate
from swirl_agents.agents.reference.common import PastStep, ReferenceAgent, Turn

ANNOTATION = re.compile(r"<<([^<>]*)>>")
_STATED = re.compile(r"(\s*=\s*\$?\s*)?<<([^<>]*)>>(\s*\$?-?\d[\d,]*(?:\.\d+)?%?)?")
_NUMBER = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|(?<![\d.,])\d+(?:\.\d+)?(?![\d.])")
_OPERATOR = re.compile(r"(?<=[\d)\s])([-+*/])(?=[\s\d(.])")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")

_COMPUTE_FALLBACK = ("Compute {expr}.", "Next, work out {expr}.", "Now calculate {expr}.")
_ANSWER = ("So the answer is {answer}.", "That gives the final answer, {answer}.",
           "The result is {answer}, which answers the question.", "Therefore the answer is {answer}.")
_SWAPS = {"+": "-", "-": "+", "*": "+", "/": "*"}


def annotations(solution: str) -> list[tuple[str, str, str]]:
    """``(expression, stated value, reasoning sentence)`` for each ``<<expr=value>>`` of ``solution``.

    Example:
        >>> annotations("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.")
        [('16-3-4', '9', 'Janet sells 16 - 3 - 4 duck eggs a day.')]
    """
    out = []
    for line in solution.splitlines():
        for sentence in _SENTENCE_END.split(line):
            for i, found in enumerate(ANNOTATION.finditer(sentence)):
                expr, _, value = found.group(1).rpartition("=")
                if expr.strip():
                    out.append((expr.strip(), value.strip(), _reasoning_for(sentence, i)))
    return out


def _reasoning_for(sentence: str, index: int) -> str:
    """``sentence`` with annotations before ``index`` shown as stated, that one and later ones hidden."""
    counter = iter(range(10**6))

    def replace(m: re.Match) -> str:
        if next(counter) < index:
            return (m.group(1) or "") + (m.group(3) or "")
        return ""

    return re.sub(r"\s+([.,;:!?])", r"\1", _STATED.sub(replace, sentence)).strip()


def to_number(text: str) -> Fraction | None:
    """A number written as ``12``, ``1,000``, ``$7.50``, ``3/4`` or a calculator result (``1/3 ≈ 0.33``)."""
    text = text.split("≈")[0].strip().replace(",", "").replace("$", "").rstrip("%").strip()
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def show(value: Fraction) -> str:
    """A number as an answer or operand: ``12``, ``7.5``, or ``7/3`` when the decimal does not end."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for p in (2, 5):
        while denominator % p == 0:
            denominator //= p
    if denominator == 1:
        return format(value.numerator / value.denominator, ".12g")
    return f"{value.numerator}/{value.denominator}"


def substitute(text: str, wrong: dict[Fraction, str]) -> tuple[str, bool]:
    """Replace every number of ``text`` equal to a key of ``wrong`` by its value; return (text, changed)."""
    changed = False

    def replace(m: re.Match) -> str:
        nonlocal changed
        value = to_number(m.group(0))
        if value in wrong:
            changed = True
            return wrong[value]
        return m.group(0)

    return _NUMBER.sub(replace, text), changed


def perturbations(expr: str) -> list[tuple[str, str, str]]:
    """Expressions one edit away from ``expr``, as ``(expression, old operand, new operand)``.

    An operand is changed (``old`` and ``new`` name it), or a binary operator swapped (both ``""``).

    Example:
        >>> perturbations("3*4")[:2], perturbations("3*4")[-1]
        ([('4*4', '3', '4'), ('5*4', '3', '5')], ('3+4', '', ''))
    """
    out = []
    for m in _NUMBER.finditer(expr):
        n = to_number(m.group(0))
        for new in (n + 1, n + 2, n * 2, n * 10, n - 1):
            if new > 0 and new != n:
                out.append((expr[: m.start()] + show(new) + expr[m.end():], m.group(0), show(new)))
    for m in _OPERATOR.finditer(expr):
        out.append((expr[: m.start()] + _SWAPS[m.group(1)] + expr[m.end():], "", ""))
    return out


def _replace_last(text: str, old: str, new: str) -> str:
    """``text`` with its last stand-alone number ``old`` written ``new`` (where the expression usually is)."""
    found = list(re.finditer(rf"(?<![\d.,]){re.escape(old)}(?![\d,]|\.\d)", text))
    if not found:
        return text
    m = found[-1]
    return text[: m.start()] + new + text[m.end():]


def _value(expr: str) -> Fraction | None:
    try:
        value = evaluate(expr)
    except (ToolError, ValueError, TypeError, ZeroDivisionError):
        return None
    return Fraction(int(value.p), int(value.q)) if value.is_Rational else None


class ReferenceMathAgent(ReferenceAgent):
    """Solves a maths word problem by replaying its calculator annotations, with optional mistakes.

    Args:
        questions: the problems it may be asked (each with ``<<expr=value>>`` in ``solution``).
        mistake_rate: per-step probability of injecting a mistake (0: a perfect agent).
        mistakes: the kinds to inject, a subset of ``("wrong_expression", "premature_answer", "wrong_answer")``.
        seed: varies mistakes and wording; use :meth:`with_seed` for one agent per sample.

    Example:
        >>> import gymnasium as gym, swirl_env
        >>> env = gym.make("SwirlSynthMath-v0")
        >>> agent = ReferenceMathAgent(env.unwrapped.questions)
        >>> obs, info = env.reset(seed=0)
        >>> done = False
        >>> while not done:
        ...     obs, reward, terminated, truncated, info = env.step(agent.act(obs))
        ...     done = terminated or truncated
        >>> reward
        1.0
    """

    MISTAKES = ("wrong_expression", "premature_answer", "wrong_answer")
    DEFAULT_MAX_STEPS = 10
    kind = "reference-math"

    def next_turn(self, question: Question, steps: list[PastStep], max_steps: int) -> Turn:
        plan = annotations(question.solution)
        done = [s for s in steps if s.tag == "math_exp"]
        wrong = _wrong_values(plan, done)
        i = len(steps)
        if len(done) >= len(plan) or i >= max_steps - 1:
            return self._answer(question, i, plan, done)
        expr, _, reasoning = plan[len(done)]
        expr, tainted = substitute(expr, wrong)
        reasoning = substitute(reasoning, wrong)[0] or self.phrase(question, i, _COMPUTE_FALLBACK, expr=expr)
        meta = {"mistake": "", "intent": "compute", "tainted": tainted}
        mistake, material = self.choose_mistake(question, i, {
            "wrong_expression": lambda: self._wrong_expression(question, i, expr, reasoning,
                                                               _chain_values(question, plan, wrong)),
            "premature_answer": lambda: self._premature_value(question, plan, done),
        })
        if mistake == "wrong_expression":
            return Turn(material[1], "math_exp", material[0], {**meta, "mistake": mistake})
        if mistake == "premature_answer":
            text = self.phrase(question, i, _ANSWER, answer=material)
            return Turn(text, "answer", material, {**meta, "mistake": mistake})
        return Turn(reasoning, "math_exp", expr, meta)

    def _answer(self, question: Question, i: int, plan: list, done: list[PastStep]) -> Turn:
        answer, tainted = _right_answer(question, plan, done)
        mistake, off = self.choose_mistake(question, i, {
            "wrong_answer": lambda: _off_by(answer, self.draw(question, i, "wrong-answer"), question)})
        if mistake:
            answer = off
        text = self.phrase(question, i, _ANSWER, answer=answer)
        return Turn(text, "answer", answer, {"mistake": mistake, "intent": "answer", "tainted": tainted})

    def _wrong_expression(self, question: Question, i: int, expr: str, reasoning: str,
                          chain: set[Fraction | None]) -> tuple[str, str] | None:
        """A perturbed ``expr`` with a different value and reasoning that agrees with it, or None.

        The reasoning is changed with the expression (as a model that misread a number would
        write it), so the mistake shows only against the problem and the earlier results.
        """
        options = perturbations(expr)
        start = int(self.draw(question, i, "perturb") * len(options)) if options else 0
        for k in range(len(options)):
            candidate, old, new = options[(start + k) % len(options)]
            value = _value(candidate)
            if value is None or value in chain:
                continue
            if expr in reasoning:
                return candidate, reasoning.replace(expr, candidate)
            if old and _replace_last(reasoning, old, new) != reasoning:
                return candidate, _replace_last(reasoning, old, new)
            return candidate, self.phrase(question, i, _COMPUTE_FALLBACK, expr=candidate)
        return None

    def _premature_value(self, question: Question, plan: list, done: list[PastStep]) -> str | None:
        """The latest computed value, else a number of the problem, that is not (a stand-in for) the answer.

        Where the gold answer is also an intermediate quantity, a value carried in its place would
        read as a right final answer, so it is skipped too.
        """
        gold = to_number(question.answer)
        values = carried(plan, done)
        final = {gold} | {v for j, v in enumerate(values) if v is not None and to_number(plan[j][1]) == gold}
        candidates = [s.result or "" for s in reversed(done)]
        candidates += [m.group(0) for m in _NUMBER.finditer(question.question)]
        for text in candidates:
            value = to_number(text)
            if value is not None and value not in final:
                return show(value)
        return None


def carried(plan: Sequence[tuple[str, str, str]], done: list[PastStep]) -> list[Fraction | None]:
    """Per computed annotation, the value the context shows in place of the stated one (None: no change).

    Only steps whose expression differs from the annotation's count: where the calculator merely
    disagrees with an annotation (GSM8K rounds some values on purpose) the solution's value stands.
    """
    out: list[Fraction | None] = []
    for (expr, stated, _), step in zip(plan, done):
        expected, actual = to_number(stated), to_number(step.result or "")
        changed = step.action.argument != expr and None not in (expected, actual) and expected != actual
        out.append(actual if changed else None)
    return out


def _chain_values(question: Question, plan: Sequence[tuple[str, str, str]], wrong: dict[Fraction, str]) -> set:
    """Every quantity the solution computes, as stated and as the context's carried values redo it.

    A slip must avoid them all, or it would look like a right step.
    """
    values = {to_number(stated) for _, stated, _ in plan} | {to_number(question.answer)}
    return values | {_value(substitute(expr, wrong)[0]) for expr, _, _ in plan}


def _wrong_values(plan: Sequence[tuple[str, str, str]], done: list[PastStep]) -> dict[Fraction, str]:
    """Stated value -> the operand text of the value the context carries instead (later ones win)."""
    wrong: dict[Fraction, str] = {}
    for (_, stated, _), actual in zip(plan, carried(plan, done)):
        if actual is not None:
            text = show(actual)
            wrong[to_number(stated)] = f"({text})" if "/" in text or actual < 0 else text
    return wrong


def _right_answer(question: Question, plan: Sequence[tuple[str, str, str]], done: list[PastStep]) -> tuple[str, bool]:
    """The answer the context supports: the gold one, or what the last step computing it carries instead."""
    gold = to_number(question.answer)
    if gold is None:
        return question.answer, False
    values = carried(plan, done)
    last = max((j for j in range(len(values)) if to_number(plan[j][1]) == gold), default=None)
    if last is not None and values[last] is not None:
        return show(values[last]), True
    return show(gold), False


def _off_by(answer: str, u: float, question: Question) -> str | None:
    """A plausible wrong number near ``answer`` (neither it nor the gold answer)."""
    value = to_number(answer)
    if value is None:
        return None
    step = max(1, abs(int(value)) // 10)
    options = [value + step, value - step, value * 2, value + 1, value - 1, value * 10]
    gold = to_number(question.answer)
    start = int(u * len(options))
    for k in range(len(options)):
        candidate = options[(start + k) % len(options)]
        if candidate != value and candidate != gold:
            return show(candidate)
    return None


__all__ = ["ReferenceMathAgent", "annotations", "perturbations", "show", "substitute", "to_number"]
