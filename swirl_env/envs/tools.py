"""Build an env's questions and tools from its arguments (shared by the QA and math envs).

This module is the one source of the defaults that depend on the data set: which splits it has,
which split an env loads by default and which one evaluation holds out, and which corpus search
uses (the Wikipedia paragraphs shipped with the data cover HotpotQA only; MuSiQue, BeerQA and CofCA
search their questions' own paragraphs). :mod:`swirl_env.cards` renders the same facts.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Sequence

from swirl_env.data.types import Question
from swirl_env.tools.base import Tool

TOOL_NAMES = ("search", "calculator")
SYNTHETIC = ("synthqa", "synthmath")
"""Data sets generated in process (:mod:`swirl_env.data.synth`): no file, splits ``train`` and ``test``."""
OWN_PARAGRAPHS = frozenset({"musique", "beerqa", "cofca"})
"""Data sets whose search corpus is their questions' own paragraphs."""
OWN_PARAGRAPHS_WHEN_GIVEN = frozenset({"2wikimultihopqa"})
"""Data sets whose official files carry paragraphs (2WikiMultihopQA's ``context``) but whose
questions-only copies do not: their own paragraphs when the questions have them."""
WIKIPEDIA_COVERS = frozenset({"hotpotqa"})
"""Data sets whose questions the default Wikipedia corpus covers (it is built from HotpotQA's paragraphs)."""
_WARNED: set[str] = set()


def splits(dataset: str) -> tuple[str, ...]:
    """The splits ``dataset`` declares, its evaluation split first (files may still be absent)."""
    if dataset in SYNTHETIC:
        from swirl_env.data.synth import SPLITS

        return ("test", *[s for s in SPLITS if s != "test"])
    from swirl_env.data import DATASETS

    return tuple(DATASETS[dataset])


def default_split(dataset: str) -> str:
    """The split an env loads when none is given: the evaluation split of a benchmark, and ``train``
    for a generated world (whose test split is kept for evaluation)."""
    return "train" if dataset in SYNTHETIC else evaluation_split(dataset)


def evaluation_split(dataset: str) -> str:
    """The held-out split evaluation uses: ``dev`` where a benchmark has one (HotpotQA's, MuSiQue's
    and BeerQA's ``test`` files have no answers), else ``test``."""
    from swirl_env.data import UNANSWERED_SPLITS

    return next(s for s in splits(dataset) if s not in UNANSWERED_SPLITS.get(dataset, ()))


def load_env_questions(dataset: str, data_path: str | os.PathLike | None, split: str | None) -> list[Question]:
    """Load ``dataset``'s ``split`` (``None``: :func:`default_split`)."""
    split = split or default_split(dataset)
    if dataset in SYNTHETIC:
        from swirl_env.data.synth import synth_questions

        return synth_questions(dataset.removeprefix("synth"), split)
    from swirl_env.data import load_questions

    return load_questions(dataset, data_path, split=split)


def default_corpus(dataset: str, questions: Sequence[Question] = ()) -> str:
    """What search reads when no corpus is given: ``synthetic``, ``questions`` (their own
    paragraphs) or ``wikipedia`` (the shared ``{title, text}`` file)."""
    if dataset in ("synthqa", "synthmath"):  # the built-in world has its own corpus
        return "synthetic"
    if dataset in OWN_PARAGRAPHS or (dataset in OWN_PARAGRAPHS_WHEN_GIVEN and any(q.paragraphs for q in questions)):
        return "questions"
    return "wikipedia"


def _search_tool(dataset: str, questions: Sequence[Question], corpus: str | os.PathLike | None, top_k: int) -> Tool:
    from swirl_env.data.corpus import default_corpus_path, passages_from_questions
    from swirl_env.tools.search import get_search

    kind = "questions" if corpus == "questions" else default_corpus(dataset, questions) if corpus is None else "file"
    if kind == "synthetic":
        from swirl_env.data.synth import synth_passages

        return get_search(passages=synth_passages(), top_k=top_k)
    if kind == "questions":
        passages = passages_from_questions(questions)
        if not passages:
            raise ValueError(f"{dataset} questions carry no paragraphs; pass corpus=<path to a {{title, text}} JSONL>")
        return get_search(passages=passages, top_k=top_k)
    if kind == "wikipedia" and dataset not in WIKIPEDIA_COVERS:
        _warn_uncovered(dataset)
    return get_search(path=corpus or default_corpus_path(), top_k=top_k)


def _warn_uncovered(dataset: str) -> None:
    """Once per data set and process: the default corpus does not hold this data set's evidence."""
    if dataset in _WARNED:
        return
    _WARNED.add(dataset)
    own = (" or data_path=<the official file, whose 'context' gives each question its own paragraphs>"
           if dataset in OWN_PARAGRAPHS_WHEN_GIVEN else "")
    warnings.warn(
        f"{dataset} questions search the default Wikipedia corpus, which holds HotpotQA's paragraphs and "
        f"does not cover {dataset}: most answers cannot be found by search, so scores measure little. "
        f"For evidence that covers them pass corpus=<a {{title, text}} JSONL>{own}.",
        UserWarning,
        stacklevel=4,
    )


def make_tools(
    names: Sequence[str],
    *,
    dataset: str,
    questions: Sequence[Question],
    corpus: str | os.PathLike | None,
    top_k: int,
) -> list[Tool]:
    """Instantiate the tools named in ``names`` (``"search"``, ``"calculator"``), or pass Tool objects through."""
    tools: list[Tool] = []
    for name in names:
        if not isinstance(name, str):
            tools.append(name)  # a user-supplied Tool object
        elif name == "search":
            tools.append(_search_tool(dataset, questions, corpus, top_k))
        elif name == "calculator":
            from swirl_env.tools.calculator import Calculator

            tools.append(Calculator())
        else:
            close = difflib.get_close_matches(name, TOOL_NAMES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown tool {name!r}; expected one of {TOOL_NAMES}.{hint}")
    return tools
