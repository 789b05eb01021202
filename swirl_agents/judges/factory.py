"""The one judge factory: every command line, the pipeline and the benchmarks build judges here.

A judge spec is a string:

- ``reference``: the gold-guided reference judge of each question's task (maths or multi-hop QA);
- ``outcome``: every step as good as the episode's final answer;
- ``llm:AGENT``: an LLM judge on any model backend that :func:`~swirl_agents.agents.factory.make_agent`
  builds (``llm:smollm2-135m-instruct``, ``llm:transformers:PATH``, ``llm:openai:URL:MODEL``);
  ``llm-logprob:AGENT`` grades by P(GOOD) instead of parsing a reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from swirl_env.context import Context
from swirl_env.data.types import Question
from swirl_agents.judges.base import Judgment, as_context

SPECS = "reference, outcome, llm:AGENT or llm-logprob:AGENT (AGENT: a model name, transformers:PATH, openai:URL:MODEL)"


class ReferenceJudge:
    """The gold-guided judge of each question's task: maths questions to the maths judge, the rest to the QA judge.

    Example:
        >>> import gymnasium as gym, swirl_env
        >>> env = gym.make("SwirlSynthMath-v0")
        >>> q = env.unwrapped.questions[0]
        >>> ReferenceJudge.for_envs([env]).judge(Context("Solve.", q.question), "<answer>-1</answer>").label
        'BAD'
    """

    id, version = "reference", "2"

    def __init__(self, qa: Sequence[Question], math: Sequence[Question]):
        from swirl_agents.judges.reference import ReferenceMathJudge, ReferenceQAJudge

        self.qa, self.math = ReferenceQAJudge(qa), ReferenceMathJudge(math)
        self._math_questions = {q.question for q in math}

    @classmethod
    def for_envs(cls, envs: Iterable[Any]) -> ReferenceJudge:
        """The judge for the questions of ``envs`` (each env says its task)."""
        qa, math = [], []
        for env in envs:
            (math if env.unwrapped.task == "math" else qa).extend(env.unwrapped.questions)
        return cls(qa, math)

    def judge(self, state: Context | str, action: str) -> Judgment:
        context = as_context(state)
        return (self.math if context.question in self._math_questions else self.qa).judge(context, action)


def make_judge(spec: str, *, envs: Iterable[Any] = (), chat: bool = False, batch_size: int = 16,
               max_new_tokens: int = 200) -> Any:
    """The judge named by ``spec`` (see the module docstring); ``envs`` give the reference judge its questions.

    Example:
        >>> make_judge("outcome").id
        'outcome'
        >>> make_judge("gold")
        Traceback (most recent call last):
        ...
        ValueError: expected a judge spec (reference, outcome, llm:AGENT or llm-logprob:AGENT (AGENT: a model name, transformers:PATH, openai:URL:MODEL)), actual 'gold'
    """
    from swirl_agents.judges.llm import LLMJudge
    from swirl_agents.judges.outcome import OutcomeJudge

    if spec == "outcome":
        return OutcomeJudge()
    if spec == "reference":
        envs = list(envs)
        if not envs:
            raise ValueError("the reference judge needs the envs whose questions it grades: make_judge('reference', envs=[...])")
        return ReferenceJudge.for_envs(envs)
    kind, _, rest = spec.partition(":")
    if kind in ("llm", "llm-logprob") and rest:
        from swirl_agents.agents.factory import make_agent

        backend = make_agent(rest, temperature=0.0, max_new_tokens=max_new_tokens, batch_size=batch_size)
        return LLMJudge(backend, chat=chat, max_new_tokens=max_new_tokens,
                        mode="logprob" if kind == "llm-logprob" else "text")
    raise ValueError(f"expected a judge spec ({SPECS}), actual {spec!r}")
