"""Tokenisation and packing: packed ids equal what generation sees, exact sampled ids, filters, chat templates, length."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from swirl_agents.prompting import encode_prompt, prompt_pieces, render_prompt, tokenizer_fingerprint
from swirl_agents.training.data import (assign_rewards, collate, fit_length, group_episodes, make_batches, pack_episode,
                                        pack_transitions)
from tests.training.conftest import make_episode

# Renders each message verbatim after a role header: render(state_{i+1}) extends render(state_i) + action_i.
SIMPLE_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# Rewrites earlier assistant turns (keeps only the action, drops the reasoning), as some reasoning-model templates do.
REWRITING_TEMPLATE = SIMPLE_TEMPLATE.replace(
    "{{ m['content'] }}", "{% if m['role'] == 'assistant' %}{{ m['content'].split('<')[1:] | join('<') }}{% else %}{{ m['content'] }}{% endif %}"
)


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _episodes(transitions):
    return {eid: (ep, kept) for eid, (ep, kept) in group_episodes(transitions).items()}


def _assert_generation_view(tokenizer, episode, kept, row):
    """Each trained step's prefix in the row is the prompt generation builds for it, then the step's ids."""
    for k, (start, end) in zip(sorted(kept), row.spans):
        prompt = encode_prompt(tokenizer, episode.context(k)).ids
        assert row.input_ids[:start] == prompt
        assert tokenizer.decode(row.input_ids[start:end]) == episode.steps[k].action


def test_packed_ids_equal_each_actions_generation_ids(gsm8k_episodes, tiny_tokenizer):
    for episode, kept in group_episodes(gsm8k_episodes).values():
        row = pack_episode(tiny_tokenizer, episode, kept)
        assert len(row.spans) == len(kept) >= 3
        _assert_generation_view(tiny_tokenizer, episode, kept, row)
        assert tiny_tokenizer.decode(row.input_ids) == episode.context(len(kept) - 1).render() + episode.steps[-1].action


def test_piecewise_rule_where_whole_string_bpe_breaks_the_prefix(gsm8k_episodes):
    """Why pieces: a BPE that learnt to merge "\\n\\n" (real ones have) tokenises a state's trailing
    "\\n\\n" as one token, but "\\n\\n" + the action text that follows it in the next state differently."""
    from swirl_agents.tiny import train_tokenizer

    tok = train_tokenizer([t.state for t in gsm8k_episodes] * 3, vocab_size=600)
    assert len(_ids(tok, "\n\n")) == 1
    whole_breaks = 0
    for episode, kept in group_episodes(gsm8k_episodes).values():
        row = pack_episode(tok, episode, kept)
        _assert_generation_view(tok, episode, kept, row)  # the piecewise rule always holds
        for k, (_, end) in zip(sorted(kept), row.spans):
            assert tok.decode(encode_prompt(tok, episode.context(k)).ids) == episode.context(k).render()
            whole = tok(episode.context(k).render())["input_ids"] + _ids(tok, episode.steps[k].action)
            whole_breaks += whole != row.input_ids[:end]
    assert whole_breaks >= len(group_episodes(gsm8k_episodes))  # whole-string tokenisation cannot be packed exactly


def test_recorded_sampled_ids_are_trained_exactly_even_when_not_canonical(gsm8k_episodes, tiny_tokenizer):
    episode, kept = next(iter(group_episodes(gsm8k_episodes).values()))
    # A sampler may split a text differently from the tokenizer: one byte-level token per character here.
    odd = [tuple(i for ch in s.action for i in _ids(tiny_tokenizer, ch)) for s in episode.steps]
    assert all(tiny_tokenizer.decode(list(ids)) == s.action for ids, s in zip(odd, episode.steps))
    assert any(list(ids) != _ids(tiny_tokenizer, s.action) for ids, s in zip(odd, episode.steps))
    recorded = make_episode("odd", episode.question, [(s.action, s.result) for s in episode.steps],
                            token_ids=odd, tokenizer=tokenizer_fingerprint(tiny_tokenizer))
    rows, stats = pack_transitions(tiny_tokenizer, [t for t in _transitions(recorded)], max_len=4096)
    assert stats.actions_exact == len(episode.steps) and stats.actions_fallback == stats.actions_retokenized == 0
    for (start, end), ids in zip(rows[0].spans, odd):
        assert rows[0].input_ids[start:end] == list(ids)
    # Another tokenizer's ids are not used: re-tokenised and counted.
    other = dataclasses.replace(recorded, steps=tuple(dataclasses.replace(s, tokenizer="sha256:other")
                                                      for s in recorded.steps))
    _, stats = pack_transitions(tiny_tokenizer, _transitions(other), max_len=4096)
    assert stats.actions_fallback == len(episode.steps) and stats.actions_exact == 0


def _transitions(episode):
    from swirl_agents.episodes import decompose

    return decompose(episode, [1.0] * len(episode.steps))


def test_filtered_episode_trains_only_kept_actions(gsm8k_episodes, tiny_tokenizer):
    episode, kept = next(v for v in group_episodes(gsm8k_episodes).values() if len(v[1]) >= 4)
    kept = {k: r for k, r in kept.items() if k != 1}
    row = pack_episode(tiny_tokenizer, episode, kept)
    assert len(row.spans) == len(kept)
    _assert_generation_view(tiny_tokenizer, episode, kept, row)
    start = len(encode_prompt(tiny_tokenizer, episode.context(1)).ids)  # the dropped action is context, untrained
    assert all(not (s <= start < e) for s, e in row.spans)
    assert tiny_tokenizer.decode(row.input_ids[start:start + 4]) in episode.steps[1].action


def test_last_kept_step_ends_the_row(gsm8k_episodes, tiny_tokenizer):
    episode, _ = next(v for v in group_episodes(gsm8k_episodes).values() if len(v[1]) >= 4)
    row = pack_episode(tiny_tokenizer, episode, {0: 1.0, 1: 1.0})
    assert tiny_tokenizer.decode(row.input_ids) == episode.context(1).render() + episode.steps[1].action


def test_chat_template_prefix_property_packs(gsm8k_episodes, tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = SIMPLE_TEMPLATE
    groups = group_episodes(gsm8k_episodes[:12])
    for episode, kept in groups.values():
        last = episode.context(max(kept))
        pieces = prompt_pieces(tok, last)
        assert "".join(pieces) == render_prompt(tok, last) and len(pieces) == 2 * max(kept) + 1
        _assert_generation_view(tok, episode, kept, pack_episode(tok, episode, kept))
    rows, stats = pack_transitions(tok, gsm8k_episodes[:12], max_len=4096)
    assert stats.fallback_episodes == 0 and len(rows) == len(groups)


def test_template_rewriting_earlier_turns_falls_back_per_transition(gsm8k_episodes, tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = REWRITING_TEMPLATE
    transitions = [t for t in gsm8k_episodes if t.episode_id in list(group_episodes(gsm8k_episodes))[:3]]
    rows, stats = pack_transitions(tok, transitions, max_len=4096)
    assert stats.fallback_episodes == stats.episodes > 0 and stats.packed_episodes == 0
    assert len(rows) == len(transitions)
    for t, row in zip(transitions, rows):  # each still exactly what generation sees
        assert row.input_ids[: row.spans[0][0]] == encode_prompt(tok, t.context()).ids


def test_long_rows_are_split_at_step_boundaries_and_counted(gsm8k_episodes, tiny_tokenizer):
    episode, kept = max(group_episodes(gsm8k_episodes).values(), key=lambda v: len(v[1]))
    row = pack_episode(tiny_tokenizer, episode, kept)
    max_len = row.spans[1][1] + 2  # the first two actions fit with their exact context
    rows, truncated, dropped = fit_length(row, max_len)
    assert all(len(r) <= max_len for r in rows)
    assert rows[0].input_ids == row.input_ids[: row.spans[1][1]] and len(rows[0].spans) == 2
    assert truncated + dropped == len(row.spans) - 2 and truncated > 0
    for r in rows[1:]:
        assert r.input_ids[: row.head_len] == row.input_ids[: row.head_len]  # instructions + question kept
        for s, e in r.spans:
            assert tiny_tokenizer.decode(r.input_ids[s:e]) in {step.action for step in episode.steps}
    _, _, all_dropped = fit_length(row, row.head_len + 1)
    assert all_dropped == len(row.spans) - sum(e <= row.head_len + 1 for _, e in row.spans)


def test_pack_stats_count_truncation(gsm8k_episodes, tiny_tokenizer):
    _, stats = pack_transitions(tiny_tokenizer, gsm8k_episodes, max_len=260)
    assert stats.actions_truncated > 0
    naive_rows, naive = pack_transitions(tiny_tokenizer, gsm8k_episodes, max_len=260, packed=False)
    assert naive.actions_truncated > 0 and all(len(r) <= 260 for r in naive_rows)
    _, full = pack_transitions(tiny_tokenizer, gsm8k_episodes, max_len=4096)
    assert full.actions_truncated == full.actions_dropped == 0
    assert full.tokens < full.naive_tokens / 2 and full.action_tokens > 0
    assert full.actions_retokenized == len(gsm8k_episodes)  # hand-built steps carry no sampled ids


def test_make_batches_respects_budget():
    lengths = [30, 5, 120, 64, 64, 7, 300, 90]
    batches = make_batches(lengths, max_tokens=200)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 200 or len(b) == 1
    with pytest.raises(ValueError, match="max_tokens >= 1"):
        make_batches(lengths, 0)


def test_collate_aligns_actions_and_rewards(gsm8k_episodes, tiny_tokenizer):
    rows, _ = pack_transitions(tiny_tokenizer, gsm8k_episodes[:8], max_len=4096)
    batch = collate(rows, tiny_tokenizer.pad_token_id)
    assert batch["n_actions"] == sum(len(r.spans) for r in rows)
    for b, row in enumerate(rows):
        assert batch["attention_mask"][b].sum() == len(row)
        assert (batch["input_ids"][b, len(row):] == tiny_tokenizer.pad_token_id).all()
        expected = torch.full((batch["input_ids"].shape[1],), -1)
        for s, e in row.spans:
            expected[s:e] = 0
        assert torch.equal(batch["action_ids"][b] >= 0, expected >= 0)
        assert set(batch["rewards"][b][batch["action_ids"][b] >= 0].tolist()) <= set(row.rewards)


def test_rewards_per_objective_and_grouping():
    e = make_episode("e", "q", [("a", "r"), ("b", None)])
    f = dataclasses.replace(make_episode("f", "q2", [("c", None)]), reward=0.0)
    ts = [_transitions(e)[1], _transitions(e)[0], _transitions(f)[0]]
    ts = [dataclasses.replace(t, reward=r) for t, r in zip(ts, [1.0, -1.0, 0.5])]
    assert group_episodes(ts)["e"][1] == {1: 1.0, 0: -1.0}
    assert [t.reward for t in assign_rewards(ts, "swirl")] == [1.0, -1.0, 0.5]
    assert [t.reward for t in assign_rewards(ts, "sft")] == [1.0, 1.0, 1.0]
    assert [t.reward for t in assign_rewards(ts, "trajectory")] == [1.0, 1.0, 0.0]  # each episode's own outcome
    assert [t.reward for t in assign_rewards(ts, "trajectory", {"e": 0.0, "f": 1.0})] == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="unique step indices"):
        group_episodes(ts + [ts[0]])
    with pytest.raises(ValueError, match="expected objective in"):
        assign_rewards(ts, "ppo")
