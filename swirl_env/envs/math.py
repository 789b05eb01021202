"""Grade-school math word problems with an exact sympy calculator (GSM8K and the built-in world)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from swirl_env.data.types import Question
from swirl_env.envs.base import SwirlEnv
from swirl_env.envs.tools import load_env_questions, make_tools
from swirl_env.scoring import math_scores


class SwirlMathEnv(SwirlEnv):
    """Solve a math word problem with a calculator, one text step at a time.

    ## Description
    The agent sees the instructions and a word problem. Each step is free reasoning followed by
    exactly one action: ``<math_exp>expression</math_exp>`` (evaluated exactly by sympy after an
    AST whitelist; the value comes back as the result), ``<search_query>q</search_query>`` when
    search is offered, or ``<answer>number</answer>``, which ends the episode.

    ## Action Space
    :class:`~swirl_env.spaces.UnicodeText` up to ``max_action_chars``; malformed steps become
    observations and count against the limit.

    ## Observation Space
    :class:`~swirl_env.spaces.UnicodeText`: the whole context as one string.

    ## Starting State
    A problem drawn with ``np_random``, or ``options={"question_id": ...}``.

    ## Rewards
    0 before the answer; at the answer 1 if it equals the gold answer numerically
    (``72`` = ``72.0`` = ``$72``, ``1,000`` = ``1000``), else 0.

    ## Episode End
    ``terminated`` at an answer; ``truncated`` after ``max_steps`` steps (default 10, as in SWiRL).

    ## Information
    As :class:`~swirl_env.envs.qa.SwirlQAEnv`.

    ## Arguments
    ``dataset`` (``gsm8k`` or ``synthmath``), ``data_path``, ``split`` (GSM8K: ``test`` by
    default, or ``train``), ``questions``, ``tools`` (``("calculator",)``; add ``"search"``),
    ``corpus`` and ``top_k`` for search, ``max_steps`` (10), ``render_mode``.

    ## Version History
    * v0: initial version.

    Example:
        >>> import gymnasium as gym, swirl_env
        >>> env = gym.make("SwirlSynthMath-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step("Add them. <math_exp>2+3</math_exp>")
        >>> obs.endswith("<result>\\n5\\n</result>\\n\\n")
        True
    """

    task = "math"
    """What kind of task this env poses (``qa`` or ``math``), so callers need no isinstance test."""

    def __init__(
        self,
        dataset: str = "gsm8k",
        data_path: str | os.PathLike | None = None,
        *,
        split: str | None = None,
        questions: Sequence[Question] | None = None,
        corpus: str | os.PathLike | None = None,
        tools: Sequence[str] = ("calculator",),
        top_k: int = 5,
        max_steps: int = 10,
        render_mode: str | None = None,
        **kwargs,
    ):
        self.dataset = dataset
        qs = list(questions) if questions is not None else load_env_questions(dataset, data_path, split)
        super().__init__(
            qs,
            make_tools(tools, dataset=dataset, questions=qs, corpus=corpus, top_k=top_k),
            math_scores,
            max_steps=max_steps,
            render_mode=render_mode,
            **kwargs,
        )
