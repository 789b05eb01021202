"""Episodes and transitions as Hugging Face datasets: Parquet that ``datasets``, TRL and pandas read.

Install with ``pip install "swirl-rl[datasets]"``. One row per episode:

* ``messages``: the episode in the chat format (:meth:`swirl_env.context.Context.messages`): the
  instructions as the system message, the question as the first user message, each step an
  assistant message and each tool result the user message after it. Every message also has
  ``train`` (whether this assistant turn is a training example of the file), ``reward`` (its
  training reward) and ``label`` (the judge's label); they are ``false``/null on other turns.
* ``steps``: per step what the text does not say: ``tool``, ``tool_input``, ``error``, the env's
  ``env_reward``, ``seconds``, ``meta`` (JSON), the sampled ``token_ids`` and their ``tokenizer``
  fingerprint (model agents), and the ``judge_id`` of a trained turn.
* ids and provenance: ``episode_id``, ``question_id``, ``env_id``, ``agent``, ``seed``, ``answer``,
  ``score`` (JSON), ``reward``, ``correct``, ``terminated``, ``truncated``, ``gold_answers``,
  ``seconds``, ``created``, ``versions`` (JSON), ``meta`` (JSON), ``schema_version``.

The same table holds the three stages of a run: episodes (every turn trained with its env reward),
judged transitions (every turn trained with the judge's score and label) and filtered transitions
(only the kept turns trained). Reading a file back gives the same :class:`Episode` and
:class:`Transition` objects (:func:`read_episodes_parquet`, :func:`read_transitions_parquet`).

**Training with TRL.** ``SFTTrainer`` with ``assistant_only_loss=True`` trains only the tokens that a
chat template puts between ``{% generation %}`` and ``{% endgeneration %}``. Gate those markers on
the message's ``train`` flag and untrained turns stay in the context but out of the loss, as
:data:`TRAINED_TURNS_TEMPLATE` does; ``docs/ecosystem.md`` shows the whole recipe.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from swirl_env.context import Context
from swirl_agents.episodes import SCHEMA_VERSION, Episode, Step, Transition, decompose

KIND_KEY = b"swirl"
"""Parquet key-value metadata key: ``{"kind", "swirl_version", "schema_version", "rows", "transitions"}`` as JSON."""

TRAINED_TURNS_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}{{ '<|assistant|>\n' }}"
    "{% if m.get('train', true) %}{% generation %}{{ m['content'] + eos_token }}{% endgeneration %}"
    "{% else %}{{ m['content'] + eos_token }}{% endif %}{{ '\n' }}"
    "{% else %}{{ '<|' + m['role'] + '|>\n' + m['content'] + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
"""A chat template for TRL's ``assistant_only_loss``: assistant turns with ``train`` true (or no flag)
are the only ones inside ``{% generation %}`` markers. To use a model's own template, wrap its assistant
content the same way: ``{% if message.get('train', true) %}{% generation %}...{% endgeneration %}{% else %}...{% endif %}``."""


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as e:
        raise ImportError(f'the Parquet export needs pyarrow; install it with pip install "swirl-rl[datasets]" ({e})') from None
    return pyarrow


def schema() -> Any:
    """The Arrow schema of every swirl Parquet file (episodes, judged and filtered transitions)."""
    pa = _pyarrow()
    message = pa.struct([("role", pa.string()), ("content", pa.string()), ("train", pa.bool_()),
                         ("reward", pa.float64()), ("label", pa.string())])
    step = pa.struct([("tool", pa.string()), ("tool_input", pa.string()), ("error", pa.string()),
                      ("env_reward", pa.float64()), ("seconds", pa.float64()), ("meta", pa.string()),
                      ("token_ids", pa.list_(pa.int64())), ("tokenizer", pa.string()), ("judge_id", pa.string())])
    return pa.schema([
        ("episode_id", pa.string()), ("question_id", pa.string()), ("env_id", pa.string()), ("agent", pa.string()),
        ("seed", pa.int64()), ("messages", pa.list_(message)), ("steps", pa.list_(step)), ("answer", pa.string()),
        ("score", pa.string()), ("reward", pa.float64()), ("correct", pa.bool_()), ("terminated", pa.bool_()),
        ("truncated", pa.bool_()), ("gold_answers", pa.list_(pa.string())), ("seconds", pa.float64()),
        ("created", pa.float64()), ("versions", pa.string()), ("meta", pa.string()), ("schema_version", pa.int64()),
    ])


def episode_row(episode: Episode, trained: Sequence[Transition] = ()) -> dict[str, Any]:
    """One episode as a table row; the steps of ``trained`` (transitions of this episode) are the trained turns.

    Example:
        >>> ep = Episode("e", "q", "SwirlSynthMath-v0", "demo", 0, "2+3?", "Be brief.",
        ...              (Step("<math_exp>2+3</math_exp>", "math_exp", "2+3", "5"),
        ...               Step("<answer>5</answer>", "answer", "5", None, reward=1.0)),
        ...              "5", {"exact_match": 1.0}, 1.0, True, False)
        >>> row = episode_row(ep, decompose(ep)[1:])
        >>> [(m["role"], m["train"], m["reward"]) for m in row["messages"]]
        [('system', False, None), ('user', False, None), ('assistant', False, None), ('user', False, None), ('assistant', True, 1.0)]
    """
    kept = {t.step_index: t for t in trained}
    if any(t.episode_id != episode.episode_id for t in trained):
        raise ValueError(f"expected transitions of episode {episode.episode_id}, actual "
                         f"{sorted({t.episode_id for t in trained})}")
    context = episode.context()
    messages, step = [], -1
    for m in context.messages():
        step += m["role"] == "assistant"
        t = kept.get(step) if m["role"] == "assistant" else None
        messages.append({**m, "train": t is not None, "reward": None if t is None else float(t.reward),
                         "label": None if t is None else t.label})
    if Context.from_messages([{"role": m["role"], "content": m["content"]} for m in messages]) != context:
        raise ValueError(f"episode {episode.episode_id}: expected every step but the last to have a result, "
                         "actual a step without one mid-episode; its messages would not read back")
    steps = [{"tool": s.tool, "tool_input": s.tool_input, "error": s.error, "env_reward": float(s.reward),
              "seconds": float(s.seconds), "meta": _dumps(s.meta),
              "token_ids": None if s.token_ids is None else list(s.token_ids), "tokenizer": s.tokenizer,
              "judge_id": kept[i].judge_id if i in kept else ""} for i, s in enumerate(episode.steps)]
    return {"episode_id": episode.episode_id, "question_id": episode.question_id, "env_id": episode.env_id,
            "agent": episode.agent, "seed": episode.seed, "messages": messages, "steps": steps,
            "answer": episode.answer, "score": _dumps(episode.score), "reward": float(episode.reward),
            "correct": episode.correct, "terminated": episode.terminated, "truncated": episode.truncated,
            "gold_answers": list(episode.gold_answers), "seconds": float(episode.seconds),
            "created": float(episode.created), "versions": _dumps(episode.versions), "meta": _dumps(episode.meta),
            "schema_version": episode.schema_version}


def episode_from_row(row: Mapping[str, Any]) -> Episode:
    """The :class:`Episode` of a row (from :func:`episode_row`, a Parquet file or a ``datasets.Dataset``).

    Example:
        >>> ep = Episode("e", "q", "SwirlSynthMath-v0", "demo", 0, "2+3?", "Be brief.",
        ...              (Step("<answer>5</answer>", "answer", "5", None, reward=1.0, token_ids=(7, 8)),),
        ...              "5", {"exact_match": 1.0}, 1.0, True, False)
        >>> episode_from_row(episode_row(ep)) == ep
        True
    """
    _check_row(row)
    context = Context.from_messages([{"role": m["role"], "content": m["content"]} for m in row["messages"]])
    if len(context.steps) != len(row["steps"]):
        raise ValueError(f"episode {row['episode_id']}: expected one 'steps' entry per assistant message "
                         f"({len(context.steps)}), actual {len(row['steps'])}")
    steps = tuple(Step(turn.text, s["tool"], s["tool_input"], turn.result, s["error"], s["env_reward"], s["seconds"],
                       json.loads(s["meta"]), None if s["token_ids"] is None else tuple(s["token_ids"]), s["tokenizer"])
                  for turn, s in zip(context.steps, row["steps"]))
    return Episode(row["episode_id"], row["question_id"], row["env_id"], row["agent"], row["seed"], context.question,
                   context.instructions, steps, row["answer"], json.loads(row["score"]), row["reward"],
                   row["terminated"], row["truncated"], tuple(row["gold_answers"]), row["seconds"], row["created"],
                   json.loads(row["versions"]), json.loads(row["meta"]), row["schema_version"])


def transitions_from_row(row: Mapping[str, Any]) -> list[Transition]:
    """The transitions of a row: its trained turns, in step order, with their rewards, judge ids and labels."""
    episode = episode_from_row(row)
    assistant = [m for m in row["messages"] if m["role"] == "assistant"]
    return [Transition(episode, i, float(m["reward"]), row["steps"][i]["judge_id"], m["label"] or "")
            for i, m in enumerate(assistant) if m["train"]]


def write_episodes_parquet(path: str | os.PathLike, episodes: Iterable[Episode]) -> int:
    """Write ``episodes`` as Parquet, every step trained with its env reward (:func:`decompose`); return how many.

    Example:
        >>> import tempfile, os
        >>> ep = Episode("e", "q", "SwirlSynthMath-v0", "demo", 0, "2+3?", "Be brief.",
        ...              (Step("<answer>5</answer>", "answer", "5", None, reward=1.0),),
        ...              "5", {"exact_match": 1.0}, 1.0, True, False)
        >>> path = os.path.join(tempfile.mkdtemp(), "episodes.parquet")
        >>> write_episodes_parquet(path, [ep]), read_episodes_parquet(path) == [ep]
        (1, True)
    """
    rows = [episode_row(ep, decompose(ep)) for ep in episodes]
    _write(path, rows, "episodes")
    return len(rows)


def write_transitions_parquet(path: str | os.PathLike, transitions: Iterable[Transition], kind: str = "transitions") -> int:
    """Write transitions as Parquet, one row per episode with its transitions as the trained turns; return how many.

    ``kind`` is recorded in the file's metadata (``transitions`` for filtered data, ``judged`` for every judged step).

    Example:
        >>> import tempfile, os
        >>> ep = Episode("e", "q", "SwirlSynthMath-v0", "demo", 0, "2+3?", "Be brief.",
        ...              (Step("<math_exp>2+3</math_exp>", "math_exp", "2+3", "5"),
        ...               Step("<answer>5</answer>", "answer", "5", None, reward=1.0)),
        ...              "5", {"exact_match": 1.0}, 1.0, True, False)
        >>> kept = decompose(ep, [0.5, 1.0], "reference", ["GOOD", "GOOD"])[1:]
        >>> path = os.path.join(tempfile.mkdtemp(), "transitions.parquet")
        >>> write_transitions_parquet(path, kept), read_transitions_parquet(path) == kept
        (1, True)
    """
    groups: dict[str, tuple[Episode, list[Transition]]] = {}
    for t in transitions:
        groups.setdefault(t.episode_id, (t.episode, []))[1].append(t)
    _write(path, [episode_row(ep, ts) for ep, ts in groups.values()], kind)
    return sum(len(ts) for _, ts in groups.values())


def read_episodes_parquet(path: str | os.PathLike) -> list[Episode]:
    """The episodes of a swirl Parquet file (any of the three kinds)."""
    return [episode_from_row(row) for row in _read(path)]


def read_transitions_parquet(path: str | os.PathLike) -> list[Transition]:
    """The transitions of a swirl Parquet file: every trained turn, grouped by episode, in step order."""
    return [t for row in _read(path) for t in transitions_from_row(row)]


def export_run(episodes_path: str | os.PathLike, judgments_path: str | os.PathLike | None = None,
               transitions_path: str | os.PathLike | None = None, *, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Export a run's JSONL files as a Hugging Face dataset folder: Parquet files and a dataset card.

    Writes ``episodes.parquet``; with ``judgments_path``, ``judged.parquet`` (every step, rewarded by the
    judge: the ``none`` data strategy); with ``transitions_path`` (from ``swirl filter``),
    ``transitions.parquet``; and ``README.md`` whose ``configs`` name them, so that
    ``datasets.load_dataset(out_dir, "transitions")`` loads one.

    Returns:
        Config name (``episodes``, ``judged``, ``transitions``) to the Parquet file written.

    Example:
        >>> import tempfile, os
        >>> from swirl_agents.rollout import generate_episodes
        >>> run = tempfile.mkdtemp()
        >>> class Answer5:
        ...     def act(self, observation): return "<answer>5</answer>"
        >>> _ = generate_episodes("SwirlSynthMath-v0", Answer5(), out=f"{run}/episodes.jsonl", num_questions=2,
        ...                       progress=False)
        >>> sorted(export_run(f"{run}/episodes.jsonl", out_dir=f"{run}/hf"))
        ['episodes']
    """
    from swirl_agents.episodes import read_episodes, read_transitions
    from swirl_agents.filters import filter_transitions
    from swirl_agents.judges import read_judgments

    out = Path(out_dir)
    episodes = list(read_episodes(episodes_path))
    written = {"episodes": out / "episodes.parquet"}
    write_episodes_parquet(written["episodes"], episodes)
    if judgments_path is not None:
        judged, _ = filter_transitions(episodes, read_judgments(judgments_path), "none")
        written["judged"] = out / "judged.parquet"
        write_transitions_parquet(written["judged"], judged, kind="judged")
    if transitions_path is not None:
        written["transitions"] = out / "transitions.parquet"
        write_transitions_parquet(written["transitions"], read_transitions(transitions_path))
    (out / "README.md").write_text(dataset_card(written, sources=[episodes_path, judgments_path, transitions_path]),
                                   encoding="utf-8")
    return written


def dataset_card(files: Mapping[str, Path], sources: Sequence[str | os.PathLike | None] = ()) -> str:
    """A dataset card whose YAML ``configs`` let ``datasets.load_dataset(folder, name)`` find each file."""
    configs = "".join(f"- config_name: {name}\n  data_files: {path.name}\n" for name, path in files.items())
    made_from = ", ".join(f"`{Path(s).name}`" for s in sources if s is not None)
    return (f"---\nconfigs:\n{configs}---\n\n# swirl run\n\nExported by swirl-rl from {made_from}. One row per "
            "episode; `messages` is the episode in the chat format, each assistant turn with `train`, `reward` "
            "and `label`; `steps` holds each step's tool call, env reward and sampled token ids. Read back with "
            "`swirl_agents.interop.hf_datasets.read_transitions_parquet`.\n")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _write(path: str | os.PathLike, rows: list[dict[str, Any]], kind: str) -> None:
    """Write ``rows`` with :func:`schema` atomically (a temporary file, then a rename)."""
    pa = _pyarrow()
    from swirl_agents import __version__

    table = pa.Table.from_pylist(rows, schema=schema())
    trained = sum(m["train"] for r in rows for m in r["messages"])
    info = {"kind": kind, "swirl_version": __version__, "schema_version": SCHEMA_VERSION, "rows": len(rows),
            "transitions": trained}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), KIND_KEY: json.dumps(info).encode()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pa.parquet.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: str | os.PathLike) -> list[dict[str, Any]]:
    pa = _pyarrow()
    table = pa.parquet.read_table(path)
    missing = [n for n in schema().names if n not in table.column_names]
    if missing:
        raise ValueError(f"{path}: expected a swirl Parquet file (written by swirl_agents.interop.hf_datasets), "
                         f"actual columns {table.column_names} (missing {missing})")
    return table.to_pylist()


def _check_row(row: Mapping[str, Any]) -> None:
    version = row.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ValueError(f"episode schema version {version!r} is newer than this swirl ({SCHEMA_VERSION}); upgrade swirl")
