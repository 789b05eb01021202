"""Env cards: what each registered env id is, built from the registry and the code's own defaults.

A card says what kind of task an env poses, which data set and splits it has, which split it loads
by default and which one evaluation holds out, what search reads and whether that covers the
questions, the tools, the step limit and the reward. Nothing here is typed twice: the id and data
set come from :data:`swirl_env.ENV_IDS`, the task from the env class, the splits and corpus from
:mod:`swirl_env.envs.tools`, the limits from the constructors' defaults. ``docs/envs.md`` is this
module's output::

    python -m swirl_env.cards > docs/envs.md

Example:
    >>> c = card("SwirlHotpot-v0")
    >>> c.task, c.default_split, c.eval_split, c.max_steps, c.tools
    ('qa', 'dev', 'dev', 5, ('search',))
    >>> eval_split("SwirlGSM8K-v0"), eval_split("SwirlSynthMath-v0")
    ('test', 'test')
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym

from swirl_env import ENV_IDS
from swirl_env.data import UNANSWERED_SPLITS
from swirl_env.envs import tools as env_tools

_CORPUS_TEXT = {
    "synthetic": "the generated world's paragraphs",
    "questions": "each question's own paragraphs",
    "wikipedia": "`wikipedia/hotpotqa_paragraphs.jsonl.gz` (HotpotQA's paragraphs)",
}


@dataclass(frozen=True)
class EnvCard:
    """The facts about one registered env id (see the module docstring for where each comes from)."""

    id: str
    dataset: str
    task: str
    """``qa`` or ``math``: the env class's ``task``."""
    splits: tuple[str, ...]
    """Splits the data set declares (their files may be absent), evaluation split first."""
    unanswered_splits: tuple[str, ...]
    """Splits whose published files have no answers: for generating episodes, not for scores."""
    default_split: str
    """The split ``gym.make(id)`` loads."""
    eval_split: str
    """The held-out split evaluation uses."""
    corpus: str
    """What search reads by default."""
    corpus_covers_questions: Literal["yes", "no", "official files only"]
    """Whether that corpus holds the evidence for the questions of the default data."""
    tools: tuple[str, ...]
    max_steps: int
    reward_metric: str
    questions: tuple[tuple[str, int, str], ...] = ()
    """``(split, number of questions, file)`` for each split whose data was found, when counted."""


def card(env_id: str, *, count: bool = False) -> EnvCard:
    """The card of ``env_id``; with ``count``, the questions of every split whose data is present.

    Raises:
        KeyError: ``env_id`` is not a swirl env id (the message suggests the closest one).
    """
    if env_id not in ENV_IDS:
        close = difflib.get_close_matches(env_id, ENV_IDS, n=1, cutoff=0.4)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"expected a registered swirl env id, actual {env_id!r}.{hint} Known: {', '.join(ENV_IDS)}")
    spec = gym.spec(env_id)
    cls = gym.envs.registration.load_env_creator(spec.entry_point)
    dataset = spec.kwargs["dataset"]
    corpus, covers = _corpus(dataset)
    return EnvCard(
        id=env_id,
        dataset=dataset,
        task=cls.task,
        splits=env_tools.splits(dataset),
        unanswered_splits=UNANSWERED_SPLITS.get(dataset, ()),
        default_split=env_tools.default_split(dataset),
        eval_split=env_tools.evaluation_split(dataset),
        corpus=corpus if "search" in _default(cls, spec, "tools") else "none (no search tool by default)",
        corpus_covers_questions=covers,
        tools=tuple(_default(cls, spec, "tools")),
        max_steps=_default(cls, spec, "max_steps"),
        reward_metric=_default(cls, spec, "reward_metric"),
        questions=_counts(dataset) if count else (),
    )


def cards(*, count: bool = False) -> list[EnvCard]:
    """Every registered env's card, in registry order."""
    return [card(env_id, count=count) for env_id in ENV_IDS]


def eval_split(env_id: str) -> str:
    """The held-out split to evaluate ``env_id`` on (``dev`` for HotpotQA, ``test`` for GSM8K...)."""
    return card(env_id).eval_split


def _default(cls: type, spec, name: str):
    """A constructor argument's value for this id: the registration's, else the nearest default."""
    if name in spec.kwargs:
        return spec.kwargs[name]
    for klass in cls.__mro__:
        parameter = inspect.signature(klass.__init__).parameters.get(name)
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    raise LookupError(f"{cls.__name__} has no default for {name!r}")


def _corpus(dataset: str) -> tuple[str, str]:
    if dataset in env_tools.OWN_PARAGRAPHS_WHEN_GIVEN:
        text = (f"{_CORPUS_TEXT['questions']} where the file has them (the official files' `context`); "
                f"else {_CORPUS_TEXT['wikipedia']}")
        return text, "official files only"
    kind = env_tools.default_corpus(dataset)
    covers = kind != "wikipedia" or dataset in env_tools.WIKIPEDIA_COVERS
    return _CORPUS_TEXT[kind], "yes" if covers else "no"


def _counts(dataset: str) -> tuple[tuple[str, int, str], ...]:
    out = []
    for split in env_tools.splits(dataset):
        source = _source(dataset, split)
        if source is not None:
            out.append((split, len(env_tools.load_env_questions(dataset, None, split)), source))
    return tuple(out)


def _source(dataset: str, split: str) -> str | None:
    """The file a split loads from, relative to the data directory (None when it is absent)."""
    if dataset in env_tools.SYNTHETIC:
        return "(generated)"
    from swirl_env.data import DATASETS
    from swirl_env.data.paths import data_dir

    return next((rel for rel in DATASETS[dataset][split] if (data_dir() / rel).exists()), None)


# --- the page -------------------------------------------------------------------------------------

COUNTS_HEADING = "## Questions per split"


def render_markdown(env_cards: list[EnvCard]) -> str:
    """``docs/envs.md``: one table of every card, notes on corpora, then the question counts."""
    lines = [
        "# Environments",
        "",
        "Generated from the code by `python -m swirl_env.cards > docs/envs.md` (a test checks it is up to date).",
        "Every id is made with `gym.make(id)`; `split=`, `data_path=`, `corpus=`, `tools=` and `max_steps=`",
        "override the defaults below. Evaluate on the evaluation split (`swirl_env.cards.eval_split(id)`).",
        "",
        "| id | task | data set | splits | default split | evaluation split | tools | step limit | reward |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in env_cards:
        splits = ", ".join(f"{s} (no answers)" if s in c.unanswered_splits else s for s in c.splits)
        lines.append(f"| `{c.id}` | {c.task} | {c.dataset} | {splits} | {c.default_split} | "
                     f"{c.eval_split} | {', '.join(c.tools)} | {c.max_steps} | {c.reward_metric} |")
    lines += ["", "## Search corpus", "", "| id | search reads | covers the questions |", "|---|---|---|"]
    lines += [f"| `{c.id}` | {c.corpus} | {c.corpus_covers_questions} |" for c in env_cards if c.task == "qa"]
    uncovered = [c.id for c in env_cards if c.task == "qa" and c.corpus_covers_questions != "yes"]
    lines += ["", f"{', '.join(f'`{i}`' for i in uncovered)}: the default corpus does not hold the evidence for "
              "these questions, so most answers cannot be found by search and scores measure little; the env "
              "warns once when it is built. Pass `corpus=` a `{title, text}` JSONL that covers them."]
    lines += ["", COUNTS_HEADING, "",
              "Counted in the files found under the data directory when this page was generated (the shared",
              "benchmark data); a split whose file is absent is not listed.", "",
              "| id | split | questions | file |", "|---|---|---|---|"]
    lines += [f"| `{c.id}` | {split} | {n:,} | {source if source.startswith('(') else f'`{source}`'} |"
              for c in env_cards for split, n, source in c.questions]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(cards(count=True)), end="")
