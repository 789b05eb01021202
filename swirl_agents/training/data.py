"""Episodes to packed token sequences: one row per episode, each kept action its own reward.

**Packing.** The K transitions of an episode share prefixes (the prompt for step i + 1 is the prompt
for step i, step i and its result), so one sequence, the prompt of the last kept step followed by
that step, holds every kept action after exactly the context it was generated from; with causal
attention ``log π(action_i | prefix)`` is the same there as in a sequence of its own. Training costs
one forward pass per episode instead of K. Steps that a filter dropped stay in the row as context,
untrained.

**Tokens.** Rows are built by :func:`swirl_agents.prompting.encode_prompt`, the same function the
transformers agent builds its prompts with: piece by piece, and with the ids the policy sampled for
each step wherever the episode recorded them for this tokenizer (:attr:`PackStats.actions_exact`).
A step without recorded ids (a reference agent's, another tokenizer's) is tokenised from its text
(``actions_retokenized``); recorded ids that cannot be used (another tokenizer, or a step the
rendering had to escape) are counted as ``actions_fallback``.

**Chat templates.** Packing needs each earlier prompt followed by its step to be a prefix of the
whole prompt. Templates that rewrite earlier turns break it; such episodes fall back to one
sequence per transition and are counted in :attr:`PackStats.fallback_episodes`.

**Length.** A row longer than ``max_len`` is split: the actions that fit in its first ``max_len``
tokens train on their exact context; each later action trains in a row made of the prompt head
(instructions and question) followed by the steps that fit before it: whole leading steps are cut
away, never part of one. Those actions are counted as ``actions_truncated``; an action that does not
fit even after the head alone is dropped and counted as ``actions_dropped``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from swirl_env.context import escape
from swirl_agents.episodes import Episode, Transition
from swirl_agents.prompting import encode_prompt, has_chat_template, step_tokens, text_for_model

from swirl_agents.training.config import OBJECTIVES


@dataclass
class PackedSequence:
    """One training row: token ids and the token spans of the actions trained in it."""

    episode_id: str
    input_ids: list[int]
    spans: list[tuple[int, int]]
    """``[start, end)`` token positions of each trained action."""
    rewards: list[float]
    """One reward per span."""
    step_starts: list[int] = field(default_factory=list)
    """Token position where every step of the context (trained or not) starts: where truncation may cut."""
    head_len: int = 0
    """Tokens of the prompt before the first step (instructions and question)."""

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class PackStats:
    """What packing did; every shortcut it took is counted here."""

    episodes: int = 0
    transitions: int = 0
    packed_episodes: int = 0
    fallback_episodes: int = 0
    """Episodes whose prompts broke the prefix property: one row per transition instead."""
    rows: int = 0
    tokens: int = 0
    """Tokens in all rows (what the trainer's forward passes see)."""
    action_tokens: int = 0
    naive_tokens: int = 0
    """Tokens one sequence per transition would cost (prompt_i + action_i summed)."""
    actions_truncated: int = 0
    actions_dropped: int = 0
    actions_exact: int = 0
    """Trained actions whose ids are exactly the ones the policy sampled."""
    actions_retokenized: int = 0
    """Trained actions with no recorded ids (e.g. a reference agent's), tokenised from their text."""
    actions_fallback: int = 0
    """Trained actions whose recorded ids could not be used (another tokenizer, or text the rendering escaped)."""

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


# --- rewards per objective -----------------------------------------------------------------------


def assign_rewards(
    transitions: Sequence[Transition], objective: str = "swirl", outcomes: Mapping[str, float] | None = None
) -> list[Transition]:
    """Rewards for ``objective``: ``"swirl"`` keeps each transition's own, ``"sft"`` sets every action to 1,
    ``"trajectory"`` gives every action of an episode the episode's outcome.

    The outcome is ``outcomes[episode_id]`` when given, else the episode's own reward (the env's score
    at its answer).

    Example:
        >>> from swirl_agents.episodes import Step, decompose
        >>> ep = Episode("e", "q", "env", "demo", 0, "2+3?", "Add.", (Step("<math_exp>2+3</math_exp>", "math_exp",
        ...              "2+3", "5"), Step("<answer>5</answer>", "answer", "5", None, 1.0)), "5", {}, 1.0, True, False)
        >>> ts = decompose(ep, [0.0, 0.5])
        >>> [t.reward for t in assign_rewards(ts, "trajectory")], [t.reward for t in assign_rewards(ts, "sft")]
        ([1.0, 1.0], [1.0, 1.0])
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"expected objective in {OBJECTIVES}, actual {objective!r}")
    if objective == "swirl":
        return list(transitions)
    if objective == "sft":
        return [dataclasses.replace(t, reward=1.0) for t in transitions]
    return [dataclasses.replace(t, reward=float(outcomes[t.episode_id] if outcomes and t.episode_id in outcomes
                                                 else t.episode.reward)) for t in transitions]


def group_episodes(transitions: Iterable[Transition]) -> dict[str, tuple[Episode, dict[int, float]]]:
    """Each episode (first-seen order) with the reward of each of its kept steps."""
    groups: dict[str, tuple[Episode, dict[int, float]]] = {}
    for t in transitions:
        episode, kept = groups.setdefault(t.episode_id, (t.episode, {}))
        if t.step_index in kept:
            raise ValueError(f"expected unique step indices in episode {t.episode_id!r}, actual step {t.step_index} "
                             "twice: deduplicate the transitions")
        kept[t.step_index] = t.reward
    return groups


# --- tokenisation --------------------------------------------------------------------------------


def _step_ids(episode: Episode) -> dict[int, tuple[Any, str]]:
    return {j: (s.token_ids, s.tokenizer) for j, s in enumerate(episode.steps) if s.token_ids}


def _action(tokenizer: Any, episode: Episode, k: int, stats: PackStats) -> list[int]:
    """Step ``k``'s ids as the model sees it, counted as exact, re-tokenised or a fallback."""
    step = episode.steps[k]
    ids, exact = step_tokens(tokenizer, text_for_model(tokenizer, escape(step.action)), step.token_ids, step.tokenizer)
    _count(stats, exact, bool(step.token_ids))
    return ids


def _count(stats: PackStats, exact: bool, recorded: bool) -> None:
    if exact:
        stats.actions_exact += 1
    elif recorded:
        stats.actions_fallback += 1
    else:
        stats.actions_retokenized += 1


# --- packing -------------------------------------------------------------------------------------


def pack_episode(tokenizer: Any, episode: Episode, kept: Mapping[int, float], stats: PackStats | None = None, *,
                 chat: bool | None = None) -> PackedSequence | None:
    """One row holding every kept step of ``episode`` (``kept[step index] = reward``), ``None`` if they cannot share one."""
    stats = PackStats() if stats is None else stats
    last = max(kept)
    enc = encode_prompt(tokenizer, episode.context(last), chat=chat, step_ids=_step_ids(episode))
    if enc.pieces is None:
        return None
    spans, rewards = [], []
    for j in sorted(kept)[:-1]:
        spans.append(enc.step_spans[j])
        rewards.append(kept[j])
        _count(stats, enc.exact[j], enc.exact[j] or enc.fallback[j])
    action = _action(tokenizer, episode, last, stats)
    spans.append((len(enc.ids), len(enc.ids) + len(action)))
    rewards.append(kept[last])
    step_starts = [start for start, _ in enc.step_spans] + [len(enc.ids)]
    return PackedSequence(episode.episode_id, enc.ids + action, spans, rewards, step_starts, enc.head_len)


def single_sequences(tokenizer: Any, episode: Episode, kept: Mapping[int, float], stats: PackStats | None = None, *,
                     chat: bool | None = None) -> list[PackedSequence]:
    """One row per kept step (the naive layout, and the fallback when packing is impossible)."""
    stats = PackStats() if stats is None else stats
    rows = []
    for k in sorted(kept):
        enc = encode_prompt(tokenizer, episode.context(k), chat=chat, step_ids=_step_ids(episode))
        action = _action(tokenizer, episode, k, stats)
        step_starts = [start for start, _ in enc.step_spans] + [len(enc.ids)]
        rows.append(PackedSequence(episode.episode_id, enc.ids + action, [(len(enc.ids), len(enc.ids) + len(action))],
                                   [kept[k]], step_starts, enc.head_len))
    return rows


def fit_length(row: PackedSequence, max_len: int) -> tuple[list[PackedSequence], int, int]:
    """Split ``row`` into rows of at most ``max_len`` tokens: ``(rows, actions_truncated, actions_dropped)``.

    See the module docstring: exact-context prefix first, then head + whole trailing steps.
    """
    if len(row) <= max_len:
        return [row], 0, 0
    fits = [k for k, (_, end) in enumerate(row.spans) if end <= max_len]
    out, truncated, dropped = [], 0, 0
    if fits:
        end = row.spans[fits[-1]][1]
        out.append(dataclasses.replace(row, input_ids=row.input_ids[:end], spans=row.spans[: fits[-1] + 1],
                                       rewards=row.rewards[: fits[-1] + 1]))
    rest = list(range(len(fits), len(row.spans)))
    head = row.input_ids[: row.head_len]
    while rest:
        start, end = row.spans[rest[0]]
        cuts = [c for c in row.step_starts if c <= start and row.head_len + end - c <= max_len]
        if not cuts:
            dropped += 1
            rest.pop(0)
            continue
        cut = min(cuts)
        group = [k for k in rest if row.head_len + row.spans[k][1] - cut <= max_len]
        shift = row.head_len - cut
        out.append(PackedSequence(row.episode_id, head + row.input_ids[cut: row.spans[group[-1]][1]],
                                  [(s + shift, e + shift) for s, e in (row.spans[k] for k in group)],
                                  [row.rewards[k] for k in group], [], row.head_len))
        truncated += len(group)
        rest = rest[len(group):]
    return out, truncated, dropped


def pack_transitions(
    tokenizer: Any, transitions: Sequence[Transition], *, max_len: int, packed: bool = True, chat: bool | None = None
) -> tuple[list[PackedSequence], PackStats]:
    """Rows for training: one per episode when ``packed`` (else one per transition), fitted to ``max_len``.

    Example:
        >>> from swirl_agents.episodes import Step, decompose
        >>> from swirl_agents.tiny import train_tokenizer
        >>> ep = Episode("e", "q", "env", "demo", 0, "2+3?", "Add.", (Step("<math_exp>2+3</math_exp>", "math_exp",
        ...              "2+3", "5"), Step("<answer>5</answer>", "answer", "5", None, 1.0)), "5", {}, 1.0, True, False)
        >>> tok = train_tokenizer([ep.final_context()] * 5, vocab_size=300)
        >>> rows, stats = pack_transitions(tok, decompose(ep, [1.0, 1.0]), max_len=512)
        >>> len(rows), len(rows[0].spans), stats.naive_tokens > stats.tokens, stats.actions_retokenized
        (1, 2, True, 2)
    """
    if max_len < 2:
        raise ValueError(f"expected max_len >= 2, actual {max_len}")
    chat = has_chat_template(tokenizer) if chat is None else chat
    stats, rows = PackStats(), []
    for episode, kept in group_episodes(transitions).values():
        stats.episodes += 1
        stats.transitions += len(kept)
        row = pack_episode(tokenizer, episode, kept, stats, chat=chat) if packed else None
        if row is not None:
            stats.packed_episodes += 1
            # By the packing invariant, step j's prompt is the row up to step j: its naive row ends where step j does.
            stats.naive_tokens += sum(end for _, end in row.spans)
            episode_rows = [row]
        else:
            episode_rows = single_sequences(tokenizer, episode, kept, stats, chat=chat)
            stats.fallback_episodes += int(packed)
            stats.naive_tokens += sum(len(r) for r in episode_rows)
        for r in episode_rows:
            fitted, truncated, dropped = fit_length(r, max_len)
            rows += fitted
            stats.actions_truncated += truncated
            stats.actions_dropped += dropped
    stats.rows = len(rows)
    stats.tokens = sum(len(r) for r in rows)
    stats.action_tokens = sum(e - s for r in rows for s, e in r.spans)
    return rows, stats


# --- batching ------------------------------------------------------------------------------------


def make_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Group row indices into micro-batches of at most ``max_tokens`` padded tokens (rows x longest row).

    Rows are sorted by length first so a batch pads little; a row longer than the budget gets a
    batch of its own.

    Example:
        >>> make_batches([5, 100, 6, 90], max_tokens=200)
        [[0, 2], [3, 1]]
    """
    if max_tokens < 1:
        raise ValueError(f"expected max_tokens >= 1, actual {max_tokens}")
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: (lengths[k], k)):
        # Sorted ascending, so row i is the longest of the batch if it joins.
        if current and (len(current) + 1) * lengths[i] > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def collate(rows: Sequence[PackedSequence], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors for a micro-batch.

    Returns ``input_ids``, ``attention_mask``, ``action_ids`` (batch-unique action index per input
    token, -1 elsewhere) and ``rewards`` (that action's reward), all (B, T), plus ``n_actions``.
    """
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    action_ids = torch.full((len(rows), width), -1, dtype=torch.long)
    rewards = torch.zeros((len(rows), width), dtype=torch.float32)
    n_actions = 0
    for b, row in enumerate(rows):
        input_ids[b, : len(row)] = torch.tensor(row.input_ids, dtype=torch.long)
        attention_mask[b, : len(row)] = 1
        for (start, end), reward in zip(row.spans, row.rewards):
            # Token 0 has no context to be predicted from; it is never a target.
            start = max(start, 1)
            if end > start:
                action_ids[b, start:end] = n_actions
                rewards[b, start:end] = reward
                n_actions += 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "action_ids": action_ids,
            "rewards": rewards, "n_actions": n_actions}
