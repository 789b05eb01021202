"""The objective: hand-computed values, the action mask, and packed == naive on a tiny model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from swirl_agents.training.data import collate, pack_transitions
from swirl_agents.training.losses import apply_baseline, count_units, kl_penalty, stepwise_pg_loss
from swirl_agents.training.trainer import policy_logprobs
from tests.training.conftest import tiny_model

LOGP = torch.log(torch.tensor([[0.5, 0.5, 0.25, 1.0, 0.1], [0.2, 0.4, 0.8, 0.5, 0.5]]))
IDS = torch.tensor([[-1, 0, 0, 1, -1], [-1, -1, 2, 2, 2]])
REWARDS = torch.tensor([[7.0, 1.0, 1.0, -1.0, 7.0], [0.0, 0.0, 2.0, 2.0, 2.0]])


def token_logprobs(logits, input_ids):
    """(B, T-1) log-probability of each next token, computed the plain way."""
    return torch.gather(torch.log_softmax(logits[:, :-1].float(), -1), -1, input_ids[:, 1:, None]).squeeze(-1)


def test_token_normalisation_is_paper_objective_over_action_tokens():
    # Σ_a R_a log π(a|s) = 1·(log .5 + log .25) - 1·log 1 + 2·(log .8 + log .5 + log .5), over 6 action tokens.
    expected = -(torch.log(torch.tensor(0.5 * 0.25)) + 2 * torch.log(torch.tensor(0.8 * 0.5 * 0.5))) / 6
    assert stepwise_pg_loss(LOGP, IDS, REWARDS, "token").item() == pytest.approx(expected.item(), rel=1e-6)


def test_action_and_sequence_normalisations():
    means = torch.stack([LOGP[0, 1:3].mean(), LOGP[0, 3], LOGP[1, 2:5].mean()])
    expected_action = -(1 * means[0] - 1 * means[1] + 2 * means[2]) / 3
    assert stepwise_pg_loss(LOGP, IDS, REWARDS, "action").item() == pytest.approx(expected_action.item(), rel=1e-6)
    row0 = (LOGP[0, 1] + LOGP[0, 2] - LOGP[0, 3]) / 3
    row1 = 2 * LOGP[1, 2:5].sum() / 3
    assert stepwise_pg_loss(LOGP, IDS, REWARDS, "sequence").item() == pytest.approx(-(row0 + row1).item() / 2, rel=1e-6)
    assert [count_units(IDS, n) for n in ("token", "action", "sequence")] == [6, 3, 2]


def test_denominator_override_and_bad_normalize():
    base = stepwise_pg_loss(LOGP, IDS, REWARDS, "token")
    assert stepwise_pg_loss(LOGP, IDS, REWARDS, "token", denominator=12).item() == pytest.approx(base.item() / 2)
    with pytest.raises(ValueError, match="expected normalize in"):
        stepwise_pg_loss(LOGP, IDS, REWARDS, "tokens")


def test_only_action_tokens_receive_loss():
    off_action = IDS < 0
    perturbed = torch.where(off_action, LOGP - 3.0, LOGP)  # prompt / tool-output / padding targets
    for normalize in ("token", "action", "sequence"):
        assert stepwise_pg_loss(perturbed, IDS, REWARDS, normalize).item() == stepwise_pg_loss(LOGP, IDS, REWARDS, normalize).item()
    one_action_token = LOGP.clone()
    one_action_token[1, 3] -= 1.0
    assert stepwise_pg_loss(one_action_token, IDS, REWARDS).item() != stepwise_pg_loss(LOGP, IDS, REWARDS).item()


def test_kl_estimators_and_baselines():
    lp, ref = torch.randn(3, 7), torch.randn(3, 7)
    assert (kl_penalty(lp, ref, "k3") >= 0).all() and kl_penalty(lp, lp, "k3").abs().max() == 0
    assert torch.allclose(kl_penalty(lp, ref, "k1"), lp - ref)
    r = torch.tensor([1.0, 0.0, 0.0, 1.0])
    assert apply_baseline(r, 0.5, 0.5, "mean").tolist() == [0.5, -0.5, -0.5, 0.5]
    assert apply_baseline(r, 0.5, 0.5, "none") is r
    with pytest.raises(ValueError, match="expected baseline in"):
        apply_baseline(r, 0.0, 1.0, "ema")


def _loss_and_grads(model, rows, pad_id, normalize="token"):
    model.zero_grad(set_to_none=True)
    batch = collate(rows, pad_id)
    logp, action_ids, rewards = policy_logprobs(model, batch)
    loss = stepwise_pg_loss(logp, action_ids, rewards, normalize)
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("normalize", ["token", "action"])
def test_packed_equals_naive_loss_and_gradients(gsm8k_episodes, tiny_tokenizer, normalize):
    # Ragged rewards (positive, negative, zero) and one dropped step: a filtered, judged set.
    rewards = [1.0, -1.0, 0.0, 0.5, 2.0, -0.5]
    transitions = [dataclasses.replace(t, reward=rewards[i % len(rewards)]) for i, t in enumerate(gsm8k_episodes[:12])]
    transitions = [t for t in transitions if not (t.episode_id == transitions[0].episode_id and t.step_index == 1)]
    packed, stats = pack_transitions(tiny_tokenizer, transitions, max_len=2048)
    naive, _ = pack_transitions(tiny_tokenizer, transitions, max_len=2048, packed=False)
    assert stats.packed_episodes == stats.episodes >= 3 and len(packed) == stats.episodes
    assert len(naive) == len(transitions) and max(len(r.spans) for r in packed) >= 3
    model = tiny_model(tiny_tokenizer).float()
    pad = tiny_tokenizer.pad_token_id
    packed_loss, packed_grads = _loss_and_grads(model, packed, pad, normalize)
    naive_loss, naive_grads = _loss_and_grads(model, naive, pad, normalize)
    assert packed_loss.item() == pytest.approx(naive_loss.item(), abs=1e-5)
    for name, grad in naive_grads.items():
        assert torch.allclose(packed_grads[name], grad, atol=1e-5, rtol=1e-4), name


def test_gradient_flows_only_from_action_targets(gsm8k_episodes, tiny_tokenizer):
    rows, _ = pack_transitions(tiny_tokenizer, gsm8k_episodes[:4], max_len=2048)
    batch = collate(rows[:1], tiny_tokenizer.pad_token_id)
    model = tiny_model(tiny_tokenizer)
    logits = model(input_ids=batch["input_ids"]).logits.detach().requires_grad_(True)  # (1, T, V)
    action_ids = batch["action_ids"][:, 1:]
    loss = stepwise_pg_loss(token_logprobs(logits, batch["input_ids"]), action_ids, batch["rewards"][:, 1:])
    loss.backward()
    per_position = logits.grad[0, :-1].abs().sum(-1)  # gradient on the logits predicting token t+1
    is_action = action_ids[0] >= 0
    assert per_position[~is_action].max() == 0  # prompt, tool outputs: no loss at all
    assert (per_position[is_action] > 0).all()
    # Changing the label (target id) of a tool-output token changes nothing; of an action token, the loss.
    result_pos = int(torch.nonzero(~is_action)[-1]) + 1
    action_pos = int(torch.nonzero(is_action)[0]) + 1
    for pos, same in ((result_pos, True), (action_pos, False)):
        ids = batch["input_ids"].clone()
        ids[0, pos] = (ids[0, pos] + 1) % len(tiny_tokenizer)
        other = stepwise_pg_loss(token_logprobs(logits, ids), action_ids, batch["rewards"][:, 1:])
        assert (other.item() == loss.item()) is same
