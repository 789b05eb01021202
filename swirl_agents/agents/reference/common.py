"""Reference agents: gold-guided policies with controllable, annotated mistakes.

A reference agent knows the gold annotations of the questions it may see (HotpotQA supporting
facts, MuSiQue decompositions, GSM8K ``<<expr=value>>`` calculator annotations) and follows them
one step at a time, so realistic multi-step trajectories exist without a large model. With
``mistake_rate > 0`` it injects mistakes of known kinds, and says so: the judges' benchmark uses
the injected mistakes as ground-truth labels of BAD steps.

- :class:`~swirl_agents.agents.reference.qa.ReferenceQAAgent`: search for each supporting
  article (or sub-question) in order, retry a query once when the article did not come back,
  then answer. Mistakes: ``off_target_query``, ``premature_answer``, ``wrong_answer``.
- :class:`~swirl_agents.agents.reference.math.ReferenceMathAgent`: one ``<math_exp>`` per
  annotation, then the answer. Mistakes: ``wrong_expression``, ``premature_answer``,
  ``wrong_answer``.

**A function of the observation.** ``act`` reads the question, the steps already taken and their
results from the context string alone (:func:`read_context`), so the agent has no per-episode
state, batches trivially and replays the same step for the same context.

**Randomness.** Whether a step gets a mistake, which kind, and which wording or wrong entity is
used, are drawn from a SHA-256 hash of ``(seed, question id, step index, purpose)``
(:func:`draw`), never from Python's salted ``hash``: the same seed and context always give the
same step, on any machine. Different samples of one question use different seeds: build one
agent per sample with ``agent.with_seed(base_seed + k)`` (cheap: the question index is shared).

**Annotations.** ``step(observation)`` returns with every step a dict (``StepOutput.meta``)
that the rollout stores in ``Step.meta``:

- ``mistake``: the injected mistake kind, or ``""``. A step is BAD iff ``mistake`` is not empty.
- ``intent``: what the correct procedure called for at this step (``search_support``,
  ``retry_search``, ``answer`` for QA; ``compute``, ``answer`` for math), also on mistake steps.
- ``tainted`` (math): ``True`` when the step follows the correct procedure but carries a wrong
  value produced by an earlier ``wrong_expression``. Such a step is *not* a mistake: it is the
  right thing to do given its context, which is what a process judge is asked to assess. A
  benchmark that counts such steps as BAD (as :class:`~swirl_agents.judges.reference.ReferenceMathJudge`
  does) labels ``bool(meta["mistake"]) or meta["tainted"]``.
- ``grounded`` (QA answers): whether every needed article was retrieved before answering. An
  honest agent that runs out of steps answers anyway, with ``mistake == ""`` and ``grounded == False``.

Example:
    >>> from swirl_env.data.types import Question
    >>> from swirl_agents.agents.reference import ReferenceMathAgent
    >>> q = Question("m1", "Tom has 3 bags of 4 apples. How many apples?", ("12",), "gsm8k",
    ...              solution="He has 3*4=<<3*4=12>>12 apples.")
    >>> agent = ReferenceMathAgent([q])
    >>> obs = "Solve it.\\n\\nQuestion: Tom has 3 bags of 4 apples. How many apples?\\n\\n"
    >>> agent.act(obs)
    'He has 3*4 apples. <math_exp>3*4</math_exp>'
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swirl_env.context import Context
from swirl_env.actions import Action, parse_action
from swirl_env.data.types import Question
from swirl_agents.agents.base import StepOutput

__all__ = ["PastStep", "ReferenceAgent", "Turn", "draw", "pick", "read_context"]

_MAX_STEPS = re.compile(r"at most (\d+) steps")


@dataclass(frozen=True)
class PastStep:
    """One step already in the context: its text, its parsed action and the result shown after it."""

    text: str
    action: Action
    result: str | None

    @property
    def tag(self) -> str | None:
        return self.action.tag


def read_context(observation: str) -> tuple[str, list[PastStep], int | None]:
    """Split a canonical context into (question text, past steps, step limit if the prompt states it).

    Example:
        >>> obs = Context("You have at most 5 steps.", "Who?").with_step("<search_query>x</search_query>", "x: y").render()
        >>> question, steps, limit = read_context(obs)
        >>> question, steps[0].action.argument, steps[0].result, limit
        ('Who?', 'x', 'x: y', 5)
    """
    context = Context.parse(observation)
    steps = [PastStep(t.text, parse_action(t.text), t.result) for t in context.steps]
    found = _MAX_STEPS.search(context.instructions)
    return context.question, steps, int(found.group(1)) if found else None


def draw(seed: int, question_id: str, step: int, purpose: str) -> float:
    """A uniform number in [0, 1) fixed by its arguments (SHA-256, stable across runs and machines).

    Example:
        >>> draw(0, "q1", 2, "mistake") == draw(0, "q1", 2, "mistake")
        True
        >>> draw(0, "q1", 2, "mistake") != draw(1, "q1", 2, "mistake")
        True
    """
    key = f"{seed}\x1f{question_id}\x1f{step}\x1f{purpose}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def pick(options: Sequence[Any], u: float) -> Any:
    """The option that ``u`` in [0, 1) falls on."""
    return options[min(int(u * len(options)), len(options) - 1)]


@dataclass(frozen=True)
class Turn:
    """What a policy decided at one step, before it is written out."""

    reasoning: str
    tag: str
    argument: str
    meta: dict[str, Any]

    def render(self) -> str:
        return f"{self.reasoning} <{self.tag}>{self.argument}</{self.tag}>"


class ReferenceAgent:
    """Shared machinery: question lookup, seeded draws, mistake choice and the act/batch API.

    Subclasses set :attr:`MISTAKES`, :attr:`DEFAULT_MAX_STEPS` and implement :meth:`next_turn`.
    """

    MISTAKES: tuple[str, ...] = ()
    DEFAULT_MAX_STEPS = 5
    kind = "reference"

    def __init__(self, questions: Sequence[Question], *, mistake_rate: float = 0.0,
                 mistakes: Sequence[str] | None = None, seed: int = 0):
        if not 0.0 <= float(mistake_rate) <= 1.0:
            raise ValueError(f"expected mistake_rate in [0, 1], actual {mistake_rate!r}")
        mistakes = tuple(self.MISTAKES if mistakes is None else mistakes)
        unknown = [m for m in mistakes if m not in self.MISTAKES]
        if unknown:
            raise ValueError(f"unknown mistake kind(s) {unknown}; expected a subset of {self.MISTAKES}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"expected seed to be an int, actual {seed!r}")
        self.mistake_rate = float(mistake_rate)
        self.mistakes = mistakes
        self.seed = seed
        self._by_text: dict[str, Question] = {}
        for q in questions:
            self._by_text.setdefault(q.question, q)  # the first of identical texts: the agent cannot tell them apart
        if not self._by_text:
            raise ValueError("expected at least one question, actual 0")

    @property
    def name(self) -> str:
        """The agent id recorded in episodes."""
        return f"{self.kind}(mistake_rate={self.mistake_rate:g},seed={self.seed})"

    def with_seed(self, seed: int) -> ReferenceAgent:
        """The same agent with another seed (one per sample of a question); shares the question index.

        Example:
            >>> from swirl_env.data.types import Question
            >>> from swirl_agents.agents.reference import ReferenceMathAgent
            >>> a = ReferenceMathAgent([Question("m", "1+1?", ("2",), "gsm8k", solution="<<1+1=2>>2")])
            >>> a.with_seed(3).seed, a.seed
            (3, 0)
        """
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"expected seed to be an int, actual {seed!r}")
        other = copy.copy(self)
        other.seed = seed
        return other

    # -- the agent API -------------------------------------------------------------------------

    def act(self, observation: str) -> str:
        """The next step (reasoning, then one action) for the context ``observation``."""
        return self.step(observation).text

    def step(self, observation: str) -> StepOutput:
        """The next step and its annotation (``mistake``, ``intent``, ...) for ``Step.meta``."""
        question_text, steps, max_steps = read_context(observation)
        question = self.find_question(question_text)
        turn = self.next_turn(question, steps, max_steps or self.DEFAULT_MAX_STEPS)
        return StepOutput(turn.render(), turn.meta)

    def step_batch(self, observations: Sequence[str]) -> list[StepOutput]:
        return [self.step(o) for o in observations]

    # -- helpers for subclasses ----------------------------------------------------------------

    def find_question(self, text: str) -> Question:
        """The known question whose text is ``text``; a clear ValueError for an unknown one."""
        found = self._by_text.get(text)
        if found is not None:
            return found
        raise ValueError(
            f"expected a question this {type(self).__name__} was built with ({len(self._by_text)} questions), "
            f"actual {text[:80]!r}; build the agent with the env's questions, e.g. "
            f"{type(self).__name__}(env.unwrapped.questions)"
        )

    def draw(self, question: Question, step: int, purpose: str) -> float:
        return draw(self.seed, question.id, step, purpose)

    def choose_mistake(self, question: Question, step: int, makers: Mapping[str, Callable[[], Any]]) -> tuple[str, Any]:
        """The mistake to inject at ``step``: ``(kind, material)``, or ``("", None)`` for none.

        With probability ``mistake_rate`` one of the enabled kinds is drawn among those whose maker
        (``makers[kind]()``: the wrong query, value or expression) returns something other than
        None. Makers run only then, since building a mistake can cost calculator calls.
        """
        if self.draw(question, step, "mistake") >= self.mistake_rate:
            return "", None
        made = {kind: makers[kind]() for kind in self.mistakes if kind in makers}
        kinds = [kind for kind, material in made.items() if material is not None]
        if not kinds:
            return "", None
        kind = pick(kinds, self.draw(question, step, "mistake-kind"))
        return kind, made[kind]

    def phrase(self, question: Question, step: int, templates: Sequence[str], **fields: str) -> str:
        """One of ``templates``, drawn per step, filled with ``fields``."""
        return pick(templates, self.draw(question, step, "wording")).format(**fields)

    def next_turn(self, question: Question, steps: list[PastStep], max_steps: int) -> Turn:
        raise NotImplementedError
