"""The step-wise RL objective as pure tensor functions: no model, no optimizer, no state.

SWiRL maximises ``Σ_(s,a) R(a|s) · log π(a|s)`` over every (state, action) pair of the data. In a
packed batch one row holds a whole episode; the tokens of each trained action carry an *action id*
(unique within the batch) and its reward, every other token (prompt, earlier context, tool
results, actions that were filtered out, padding) has action id ``-1`` and receives no loss.

All tensors are aligned on *target* positions: ``logprobs[b, t]`` is ``log π(x[b, t+1] | x[b, :t+1])``,
so the per-token tensors built for ``input_ids`` (B, T) are shifted by one (``x[:, 1:]``).
"""

from __future__ import annotations

import torch

from swirl_agents.training.config import BASELINES, KL_ESTIMATORS, NORMALIZATIONS

__all__ = ["BASELINES", "KL_ESTIMATORS", "NORMALIZATIONS", "apply_baseline", "count_units", "kl_penalty", "masked_sum",
           "stepwise_pg_loss"]


def stepwise_pg_loss(
    logprobs: torch.Tensor,
    action_ids: torch.Tensor,
    rewards: torch.Tensor,
    normalize: str = "token",
    denominator: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """``-Σ R(a|s) · log π(a|s)`` over the action tokens of a batch, normalised.

    Args:
        logprobs: (B, T) log π of each target token (:func:`swirl_agents.training.trainer.policy_logprobs`).
        action_ids: (B, T) long, the batch-unique id ``0..A-1`` of the action a token belongs to,
            ``-1`` for every token that must not be trained.
        rewards: (B, T) the reward (or advantage) of that token's action; ignored off actions.
        normalize: How the sum is scaled:
            ``"token"`` divides ``Σ_tokens R·log π`` by the number of action tokens. Since
            ``log π(a|s)`` is the sum over the action's tokens, this is exactly the paper's
            ``Σ_a R_a log π(a|s)`` up to a constant; longer actions weigh more.
            ``"action"`` takes each action's *mean* token log-prob (length-normalised) and averages
            over actions: every action counts equally whatever its length.
            ``"sequence"`` averages the reward-weighted token log-probs within each row (episode),
            then over rows: every episode counts equally.
        denominator: Overrides the count divided by (action tokens, actions or rows), so that
            micro-batches of one optimizer step, and processes, share one global normaliser.

    Returns:
        A scalar loss.

    Example:
        >>> lp = torch.log(torch.tensor([[0.5, 0.5, 0.25, 1.0]]))
        >>> ids = torch.tensor([[-1, 0, 0, 1]])
        >>> r = torch.tensor([[9.0, 1.0, 1.0, -1.0]])  # the prompt's reward is ignored
        >>> round(stepwise_pg_loss(lp, ids, r).item(), 4)  # -(log .5 + log .25) / 3
        0.6931
    """
    _check_choice("normalize", normalize, NORMALIZATIONS)
    mask = action_ids >= 0  # (B, T)
    weighted = torch.where(mask, rewards * logprobs, torch.zeros_like(logprobs))  # (B, T)
    if normalize == "token":
        total, count = weighted.sum(), mask.sum()
    elif normalize == "action":
        n_actions = int(action_ids.max().item()) + 1 if mask.any() else 0
        sums = _per_action_sum(weighted, action_ids, n_actions)  # (A,)
        lengths = _per_action_sum(mask.to(logprobs.dtype), action_ids, n_actions)  # (A,)
        total, count = (sums / lengths.clamp(min=1)).sum(), torch.tensor(n_actions)
    else:
        row_tokens = mask.sum(dim=1)  # (B,)
        total = (weighted.sum(dim=1) / row_tokens.clamp(min=1)).sum()
        count = (row_tokens > 0).sum()
    if denominator is None:
        denominator = count.clamp(min=1).to(logprobs.dtype)
    return -total / denominator


def count_units(action_ids: torch.Tensor, normalize: str) -> int:
    """What :func:`stepwise_pg_loss` divides by for ``normalize``: action tokens, actions or rows with an action."""
    _check_choice("normalize", normalize, NORMALIZATIONS)
    mask = action_ids >= 0
    if normalize == "token":
        return int(mask.sum())
    if normalize == "action":
        return int(torch.unique(action_ids[mask]).numel())
    return int(mask.any(dim=1).sum())


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(π || π_ref) from samples of the data.

    ``"k1"`` is ``log π - log π_ref`` (unbiased, can be negative); ``"k3"`` is
    ``exp(log π_ref - log π) - (log π_ref - log π) - 1`` (Schulman's low-variance, non-negative
    estimator). Both are (B, T); mask and average them like the policy-gradient term.

    Example:
        >>> lp, ref = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.0, -1.0]])
        >>> kl_penalty(lp, ref), kl_penalty(lp, ref, "k1")
        (tensor([[0.0000, 0.7183]]), tensor([[ 0., -1.]]))
    """
    _check_choice("kl estimator", estimator, KL_ESTIMATORS)
    log_ratio = ref_logprobs - logprobs.float()
    if estimator == "k1":
        return logprobs.float() - ref_logprobs
    return torch.exp(log_ratio) - log_ratio - 1.0


def masked_sum(values: torch.Tensor, action_ids: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over action tokens (``action_ids >= 0``)."""
    return torch.where(action_ids >= 0, values, torch.zeros_like(values)).sum()


def apply_baseline(rewards: torch.Tensor, mean: float, std: float, method: str = "none", eps: float = 1e-6) -> torch.Tensor:
    """Turn rewards into advantages with batch statistics ``mean`` and ``std`` (over actions, not tokens).

    ``"none"`` keeps rewards (the paper: the process filter keeps GOOD steps with reward 1, so
    every kept action is pushed up); ``"mean"`` subtracts the batch mean (reward-0 actions then
    get pushed *down* when the batch also holds reward-1 actions); ``"whiten"`` also divides by
    the standard deviation. With all rewards equal, ``"mean"`` and ``"whiten"`` give zero
    advantages: nothing is learnt, so use ``"none"`` for filtered, all-GOOD data.

    Example:
        >>> apply_baseline(torch.tensor([1.0, 0.0]), mean=0.5, std=0.5, method="whiten").round(decimals=4).tolist()
        [1.0, -1.0]
    """
    _check_choice("baseline", method, BASELINES)
    if method == "none":
        return rewards
    if method == "mean":
        return rewards - mean
    return (rewards - mean) / (std + eps)


def _per_action_sum(values: torch.Tensor, action_ids: torch.Tensor, n_actions: int) -> torch.Tensor:
    mask = action_ids >= 0
    out = torch.zeros(n_actions, dtype=values.dtype, device=values.device)
    return out.index_add(0, action_ids[mask], values[mask])


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"expected {name} in {choices}, actual {value!r}")
