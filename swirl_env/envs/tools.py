"""Build an env's questions and tools from its arguments (shared by the QA and math envs)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence

from swirl_env.data.types import Question
from swirl_env.tools.base import Tool

TOOL_NAMES = ("search", "calculator")
# Data sets whose search corpus is the questions' own paragraphs rather than the Wikipedia file.
_OWN_PARAGRAPHS = {"musique", "beerqa", "cofca"}


def load_env_questions(dataset: str, data_path: str | os.PathLike | None, split: str | None) -> list[Question]:
    """Load ``dataset`` (``split=None``: its evaluation split; the built-in world: ``train``)."""
    if dataset in ("synthqa", "synthmath"):
        from swirl_env.data.synth import synth_questions

        return synth_questions(dataset.removeprefix("synth"), split or "train")
    from swirl_env.data import load_questions

    return load_questions(dataset, data_path, split=split)


def _search_tool(dataset: str, questions: Sequence[Question], corpus: str | os.PathLike | None, top_k: int) -> Tool:
    from swirl_env.data.corpus import default_corpus_path, passages_from_questions
    from swirl_env.tools.search import get_search

    if corpus is None and dataset in ("synthqa", "synthmath"):  # the built-in world has its own corpus
        from swirl_env.data.synth import synth_passages

        return get_search(passages=synth_passages(), top_k=top_k)
    if corpus == "questions" or (corpus is None and dataset in _OWN_PARAGRAPHS):
        passages = passages_from_questions(questions)
        if not passages:
            raise ValueError(f"{dataset} questions carry no paragraphs; pass corpus=<path to a {{title, text}} JSONL>")
        return get_search(passages=passages, top_k=top_k)
    return get_search(path=corpus or default_corpus_path(), top_k=top_k)


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
