"""Fuzzing the action parser: tags, half tags, lookalikes and noise in random order."""

from __future__ import annotations

import random
import time

from swirl_env.actions import ACTION_TAGS, parse_action, truncate_at_action
from swirl_env.fuzz.core import Outcome

_PARSER_PIECES = ("<answer>", "</answer>", "<search_query>", "</search_query>", "<math_exp>", "</math_exp>",
                  "<answer >", "<Answer>", "< answer>", "<answer/>", "<result>", "</result>", "<", ">", "</", "/",
                  "\n", " ", "Paris", "2+2", "think", "\u200b", "＜answer＞", "<answer><answer>", "\x00", "é" * 3,
                  "<answer>" * 3, "</answer>" * 3, "a" * 200)


def random_step(rng: random.Random) -> str:
    """A model step: a well-formed one with noise around it, or tags, half tags and lookalikes in any order."""
    noise = lambda: "".join(rng.choice(_PARSER_PIECES) for _ in range(rng.randint(0, 4)))  # noqa: E731
    if rng.random() < 0.4:
        tag = rng.choice(ACTION_TAGS)
        return f"{noise()}<{tag}>{rng.choice(_PARSER_PIECES)}{noise()}</{tag}>{noise()}"
    return "".join(rng.choice(_PARSER_PIECES) for _ in range(rng.randint(0, 12)))


def check_parser(text: str, bound: float = 1.0) -> Outcome:
    """parse_action never raises, and what it returns is consistent with the text.

    Example:
        >>> check_parser("Add. <math_exp>2+2</math_exp>"), check_parser("<answer>1</search_query>2</answer>").kind
        (Outcome(kind='math_exp', detail=''), 'differs_when_cut')
    """
    start = time.monotonic()
    try:
        action = parse_action(text)
        cut = parse_action(truncate_at_action(text))
    except Exception as error:  # noqa: BLE001
        return Outcome("crash", f"{type(error).__name__}: {error}")
    if time.monotonic() - start > bound:
        return Outcome("hang", f"{time.monotonic() - start:.2f} s")
    if action.error is not None:
        return Outcome("malformed") if action.tag is None else Outcome("wrong", "an error and a tag at once")
    problems = [
        action.tag not in ACTION_TAGS and "unknown tag",
        not action.argument and "empty argument",
        action.argument != action.argument.strip() and "argument not stripped",
        action.argument not in text and "argument not in the text",
        any(f"<{t}>" in action.argument for t in ACTION_TAGS) and "a tag inside the argument",
        f"<{action.tag}>" not in text and "its tag is not in the text",
    ]
    problem = next((p for p in problems if p), None)
    if problem:
        return Outcome("wrong", problem)
    # Generation stops at the first closing tag; a step read whole may still hold a later action
    # ("<answer>a</search_query>b</answer>"): counted, as a difference between the two readings.
    return Outcome(action.tag if (cut.tag, cut.argument) == (action.tag, action.argument) else "differs_when_cut")




def target() -> tuple:
    """(generator, checker) for the parser."""
    return random_step, check_parser
