"""Multi-hop question answering with a local BM25 search tool (HotpotQA, MuSiQue, BeerQA, CofCA, ...)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from swirl_env.data.types import Question
from swirl_env.envs.base import SwirlEnv
from swirl_env.envs.tools import load_env_questions, make_tools
from swirl_env.scoring import qa_scores


class SwirlQAEnv(SwirlEnv):
    """Answer a multi-hop question by searching a Wikipedia paragraph corpus, one text step at a time.

    ## Description
    The agent sees the task instructions and a question (HotpotQA, MuSiQue, ...). Each step is
    free reasoning followed by exactly one action: ``<search_query>q</search_query>`` (BM25 over
    the corpus; the top-k paragraphs come back as ``title: text``), ``<math_exp>e</math_exp>``
    when the calculator is offered, or ``<answer>a</answer>``, which ends the episode.

    ## Action Space
    :class:`~swirl_env.spaces.UnicodeText`: any string up to ``max_action_chars`` (longer steps
    are cut). A malformed step (no action, two actions, an unclosed or empty tag, a tool the env
    does not offer) is not an error: the context records why and the step counts.

    ## Observation Space
    :class:`~swirl_env.spaces.UnicodeText`: the whole context as one string (see
    :mod:`swirl_env.context`), ending where the next step goes.

    ## Starting State
    A question drawn with the env's ``np_random`` (``reset(seed=...)``), or the one named by
    ``options={"question_id": ...}`` / ``{"question_index": i}``.

    ## Rewards
    0 before the answer; at the answer the task's primary score, ``reward_metric`` of
    :func:`swirl_env.scoring.qa_scores` (``exact_match`` by default, or ``f1``), max over gold
    answer aliases. Truncation without an answer gives 0.

    ## Episode End
    ``terminated`` at an answer; ``truncated`` after ``max_steps`` steps (default 5, as in SWiRL).

    ## Information
    Every step: ``question_id``, ``question``, ``step``, ``messages`` (the context as chat
    messages), ``tool``, ``tool_input``, ``error`` (why a step was malformed), ``tool_calls``,
    ``malformed_steps``, ``tool_errors``. At the end only: ``answer``, ``answered``, ``score``,
    ``gold_answers``, ``supporting_facts``.

    ## Arguments
    ``dataset`` (``hotpotqa``, ``musique``, ``beerqa``, ``cofca``, ``bamboogle``,
    ``2wikimultihopqa``, ``synthqa``), ``data_path`` (a file in the official format or the Hugging
    Face schema as JSON, Parquet or Arrow; default under ``$SWIRL_DATA_DIR``), ``split`` (default:
    the evaluation split, :func:`swirl_env.cards.eval_split`), ``questions`` (use these instead of loading),
    ``corpus`` (a ``{title, text}`` JSONL path, or ``"questions"`` for the questions' own
    paragraphs; default per dataset, see ``docs/envs.md``: the shared Wikipedia corpus covers
    HotpotQA only, and the env warns once when it does not cover the questions), ``tools``
    (``("search",)``; add ``"calculator"``),
    ``top_k`` (5), ``max_steps`` (5), ``reward_metric``, ``render_mode`` (``"ansi"``).

    ## Version History
    * v0: initial version.

    Example:
        >>> import gymnasium as gym, swirl_env
        >>> env = gym.make("SwirlSynthQA-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.rstrip().splitlines()[-1].startswith("Question: ")
        True
    """

    task = "qa"
    """What kind of task this env poses (``qa`` or ``math``), so callers need no isinstance test."""

    def __init__(
        self,
        dataset: str = "hotpotqa",
        data_path: str | os.PathLike | None = None,
        *,
        split: str | None = None,
        questions: Sequence[Question] | None = None,
        corpus: str | os.PathLike | None = None,
        tools: Sequence[str] = ("search",),
        top_k: int = 5,
        max_steps: int = 5,
        reward_metric: str = "exact_match",
        render_mode: str | None = None,
        **kwargs,
    ):
        self.dataset = dataset
        qs = list(questions) if questions is not None else load_env_questions(dataset, data_path, split)
        super().__init__(
            qs,
            make_tools(tools, dataset=dataset, questions=qs, corpus=corpus, top_k=top_k),
            qa_scores,
            max_steps=max_steps,
            reward_metric=reward_metric,
            render_mode=render_mode,
            **kwargs,
        )
