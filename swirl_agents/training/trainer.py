"""The step-wise RL training loop: packed episodes, AdamW, accelerate, exact resume.

The same entry point runs in one process and under a multi-process launcher (each process trains
its share of every optimizer step's micro-batches; gradients are averaged by DDP)::

    torchrun --nproc_per_node 2 examples/train_tiny.py          # CPU (gloo) or GPUs
    accelerate launch --multi_gpu --num_processes 2 examples/train_tiny.py

(``accelerate launch --cpu`` starts a single process: accelerate's multi-CPU path is ``mpirun``.)
Losses are normalised by the *global* count of action tokens (or actions, or episodes) of the
optimizer step, so the gradient does not depend on how the step is split over micro-batches or
processes.

The run's folder (run info, metrics log, checkpoints, exact resume, the final model) is kept by
:mod:`swirl_agents.training.run_state`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swirl_agents.episodes import Transition
from swirl_agents.training.config import TrainConfig
from swirl_agents.training.data import PackedSequence, assign_rewards, collate, make_batches, pack_transitions
from swirl_agents.jsonl import folder_lock
from swirl_agents.training.losses import apply_baseline, count_units, kl_penalty, masked_sum, stepwise_pg_loss
from swirl_agents.training.run_state import (  # noqa: F401 - TrainResult and data_digest are this module's API too
    TrainResult, _finished_run, _log, _mark_finished, _resume, _save_checkpoint, _save_final, _trim_metrics,
    _write_run_info, data_digest,
)


def train(config: TrainConfig, transitions: Sequence[Transition], *, model: Any = None, tokenizer: Any = None,
          outcomes: Mapping[str, float] | None = None) -> TrainResult:
    """Maximise ``Σ R(a|s) log π(a|s)`` over ``transitions`` (grouped and packed by episode).

    Re-running with the same ``output_dir`` resumes from the newest intact checkpoint (``save_every``)
    and returns a finished run as it is; a finished run with another config or other data is refused.

    Args:
        config: The run's settings.
        transitions: Filtered, rewarded transitions; several episodes, any order.
        model: A causal LM (else loaded from ``config.model``); trained in place.
        tokenizer: Its tokenizer (else loaded from ``config.model``).
        outcomes: Episode outcomes for ``objective="trajectory"`` (see :func:`~swirl_agents.training.data.assign_rewards`).

    Example:
        >>> import tempfile
        >>> from swirl_agents.episodes import Episode, Step, decompose
        >>> from swirl_agents.tiny import train_tokenizer, build_tiny_model
        >>> ep = Episode("e", "q", "env", "demo", 0, "2+3?", "Add.", (Step("<math_exp>2+3</math_exp>", "math_exp",
        ...              "2+3", "5"),), None, {}, 0.0, False, True)
        >>> tok = train_tokenizer([ep.final_context()] * 5, vocab_size=300)
        >>> result = train(TrainConfig(output_dir=tempfile.mkdtemp(), max_steps=2, save_final=False, progress=False),
        ...                decompose(ep, [1.0]), model=build_tiny_model(tok, n_layer=1, n_embd=32, n_head=2), tokenizer=tok)
        >>> result.steps, sorted(k for k in result.metrics[-1] if k.startswith("losses/"))
        (2, ['losses/kl', 'losses/pg', 'losses/total'])
    """
    from accelerate.utils import set_seed

    if not config.output_dir:
        raise ValueError("TrainConfig.output_dir: expected a folder path, actual ''")
    _quiet_padding_warning()
    out = Path(config.output_dir)
    acc = _accelerator(config, out)
    set_seed(config.seed)
    digest = data_digest(transitions)
    with folder_lock(out) if acc.is_main_process else nullcontext():
        done = _finished_run(out, config, digest, acc)
        if done is not None:
            return done
        model, tokenizer = _load(config, model, tokenizer)
        rows, batches, stats = _prepare_data(config, transitions, tokenizer, model, outcomes)
        total = config.total_steps(len(batches), acc.num_processes)
        reference = _reference_model(config, model)
        model, optimizer, scheduler = _prepare_optimization(acc, config, model, total)
        if reference is not None:
            reference.to(acc.device)
        step = _resume(acc, config, len(batches))
        if acc.is_main_process:
            _trim_metrics(out / "metrics.jsonl", step)
        _announce(acc, config, stats.as_dict(), total, digest)
        logged = _loop(acc, config, model, reference, optimizer, scheduler, rows, batches, _pad_id(tokenizer), step, total)
        final = _save_final(acc, config, model, tokenizer) if config.save_final else None
        acc.wait_for_everyone()
        if acc.is_main_process:
            _mark_finished(out, total)
        acc.end_training()
    return TrainResult(out, final, total, logged, stats.as_dict(), acc.process_index, acc.num_processes)


def _loop(acc: Any, config: TrainConfig, model: Any, reference: Any, optimizer: Any, scheduler: Any,
          rows: list[PackedSequence], batches: list[list[int]], pad_id: int, step: int, total: int) -> list[dict]:
    """Optimizer steps ``step`` to ``total``: the training loop itself."""
    from tqdm.auto import tqdm

    out, logged = Path(config.output_dir), []
    bar = tqdm(total=total, initial=step, unit="step", desc="train", dynamic_ncols=True,
               disable=not (config.progress and acc.is_main_process))
    model.train()
    while step < total:
        start = time.perf_counter()
        ids = micro_batch_ids(step, len(batches), acc.num_processes, acc.process_index, config)
        micro = [_to_device(collate([rows[i] for i in batches[b]], pad_id), acc.device) for b in ids]
        metrics = optimize_step(acc, model, reference, optimizer, micro, config)
        scheduler.step()
        step += 1
        metrics["charts/tokens_per_s"] = metrics["charts/tokens"] / (time.perf_counter() - start)
        metrics["charts/lr"] = scheduler.get_last_lr()[0]
        if step % config.log_every == 0 or step == total:
            logged.append(_log(acc, out, step, metrics, config))
        bar.update(1)
        bar.set_postfix(loss=f"{metrics['losses/total']:.4g}", tok_s=f"{metrics['charts/tokens_per_s']:.0f}", refresh=False)
        if config.save_every and step % config.save_every == 0:
            _save_checkpoint(acc, out, step, len(batches))
    bar.close()
    return logged


def optimize_step(acc: Any, model: Any, reference: Any, optimizer: Any, micro: list[dict], config: TrainConfig) -> dict:
    """One optimizer step over this process's micro-batches; metrics are reduced over processes."""
    world = acc.num_processes
    counts = torch.tensor([sum(count_units(m["action_ids"], config.normalize) for m in micro),
                           sum(int((m["action_ids"] >= 0).sum()) for m in micro),
                           sum(int(m["attention_mask"].sum()) for m in micro),
                           *_reward_moments(micro)], dtype=torch.float64, device=acc.device)
    units, action_tokens, tokens, r_n, r_sum, r_sq = acc.reduce(counts, "sum").tolist()
    mean = r_sum / max(r_n, 1)
    std = math.sqrt(max(r_sq / max(r_n, 1) - mean * mean, 0.0))
    sums = torch.zeros(3, dtype=torch.float64, device=acc.device)  # pg loss, kl loss, Σ log π
    for k, batch in enumerate(micro):
        # Gradients are all-reduced once, after the last micro-batch.
        with acc.no_sync(model) if k < len(micro) - 1 else nullcontext():
            logp, action_ids, rewards = policy_logprobs(model, batch)
            advantages = apply_baseline(rewards, mean, std, config.baseline)
            # DDP averages over processes: scale so the result is the global-batch gradient.
            pg = stepwise_pg_loss(logp, action_ids, advantages, config.normalize, denominator=max(units, 1) / world)
            kl = torch.zeros((), device=logp.device)
            if config.kl_coef:
                with torch.no_grad():
                    ref_logp, _, _ = policy_logprobs(reference if reference is not None else _adapters_off(model), batch)
                kl = masked_sum(kl_penalty(logp, ref_logp, config.kl_estimator), action_ids) / (max(action_tokens, 1) / world)
            acc.backward(pg + config.kl_coef * kl)
        sums += torch.stack([pg.detach(), kl.detach(), masked_sum(logp.detach(), action_ids)]).double()
    grad_norm = acc.clip_grad_norm_(model.parameters(), config.max_grad_norm or float("inf"))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    pg_sum, kl_sum, logp_sum = (acc.reduce(sums, "sum") / torch.tensor([world, world, 1], device=acc.device)).tolist()
    return {"losses/pg": pg_sum, "losses/kl": kl_sum, "losses/total": pg_sum + config.kl_coef * kl_sum,
            "charts/reward_mean": mean, "charts/reward_std": std, "charts/actions": r_n,
            "charts/action_tokens": action_tokens, "charts/tokens": tokens,
            "charts/logprob_mean": logp_sum / max(action_tokens, 1), "charts/grad_norm": float(grad_norm)}


def policy_logprobs(model: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log π of the target tokens at every position where some row has an action token.

    Only those positions go through the LM head and the softmax (``logits_to_keep``), which
    saves most of the head's cost: prompts and tool results are most of an episode. No attention
    mask is passed: rows are right-padded, and under causal attention a real token never attends
    to the padding after it, so real positions get the same outputs while SDPA runs its fused
    causal kernel (1.7x faster on 4k-token CPU rows than with an explicit mask).

    Returns:
        ``(logprobs, action_ids, rewards)``, each (B, K) over the K kept target positions.
    """
    action_ids = batch["action_ids"][:, 1:]  # (B, T-1): is token t+1 part of an action?
    keep = torch.nonzero((action_ids >= 0).any(dim=0)).squeeze(-1)  # (K,)
    out = model(input_ids=batch["input_ids"], use_cache=False, logits_to_keep=keep)
    logits = out.logits.float()  # (B, K, V)
    targets = batch["input_ids"][:, keep + 1]  # (B, K)
    logp = torch.gather(torch.log_softmax(logits, dim=-1), -1, targets.unsqueeze(-1)).squeeze(-1)
    return logp, action_ids[:, keep], batch["rewards"][:, 1:][:, keep]


def micro_batch_ids(step: int, n_batches: int, world: int, rank: int, config: TrainConfig) -> list[int]:
    """The micro-batches process ``rank`` trains at optimizer ``step``: a pure function of the step,
    so a resumed run sees the same data as an uninterrupted one.

    The stream is the epochs' shuffled batch orders one after the other; step s takes the next
    ``world * grad_accum_steps`` entries and process r every ``world``-th of them.

    Example:
        >>> cfg = TrainConfig(output_dir="x", grad_accum_steps=2, shuffle=False)
        >>> micro_batch_ids(0, 5, 2, 0, cfg), micro_batch_ids(0, 5, 2, 1, cfg), micro_batch_ids(1, 5, 2, 0, cfg)
        ([0, 2], [1, 3], [4, 1])
    """
    per_step = world * config.grad_accum_steps
    out = []
    for g in range(step * per_step + rank, (step + 1) * per_step, world):
        epoch, position = divmod(g, n_batches)
        order = np.random.default_rng([config.seed, epoch]).permutation(n_batches) if config.shuffle else range(n_batches)
        out.append(int(order[position]))
    return out


def lr_factor(step: int, config: TrainConfig, total: int) -> float:
    """Learning-rate multiplier at ``step``: linear warmup, then constant or cosine to zero at ``total``."""
    warmup = config.warmup(total)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if config.lr_schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


# --- set-up, checkpoints, logs ------------------------------------------------------------------


def _precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _prepare_data(config: TrainConfig, transitions: Sequence[Transition], tokenizer: Any, model: Any,
                  outcomes: Mapping[str, float] | None) -> tuple[list[PackedSequence], list[list[int]], Any]:
    """Rewards per objective, packed rows fitted to the context, micro-batches; shortcuts are warned about."""
    max_len = config.max_seq_len or getattr(model.config, "max_position_embeddings", None) or 2048
    rows, stats = pack_transitions(tokenizer, assign_rewards(transitions, config.objective, outcomes),
                                   max_len=max_len, packed=config.packed)
    if not rows:
        raise ValueError("expected at least one transition to train on, actual none (were they all filtered out?)")
    if stats.actions_truncated or stats.actions_dropped:
        warnings.warn(f"{stats.actions_truncated} actions train on a context with leading steps cut away and "
                      f"{stats.actions_dropped} are dropped: longer than max_len={max_len} tokens "
                      "(raise TrainConfig.max_seq_len if the model allows)", stacklevel=3)
    if stats.fallback_episodes:
        warnings.warn(f"{stats.fallback_episodes} of {stats.episodes} episodes could not be packed (chat template "
                      "rewrites earlier turns, or states are not canonical contexts): one row per transition", stacklevel=3)
    return rows, make_batches([len(r) for r in rows], config.max_tokens_per_batch), stats


def _prepare_optimization(acc: Any, config: TrainConfig, model: Any, total: int) -> tuple[Any, Any, Any]:
    model = _trainable(config, model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                  betas=config.adam_betas, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config, total))
    # The scheduler is not prepared: accelerate would step it once per process per step.
    model, optimizer = acc.prepare(model, optimizer)
    acc.register_for_checkpointing(scheduler)
    return model, optimizer, scheduler


def _to_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _announce(acc: Any, config: TrainConfig, stats: dict[str, int], total: int, digest: str) -> None:
    if config.report_to:
        acc.init_trackers("swirl", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                           for k, v in config.to_dict().items()})
    if not acc.is_main_process:
        return
    _write_run_info(Path(config.output_dir), config, stats, total, digest)
    if config.print_metrics:
        print(f"[swirl.train] {stats} steps={total} processes={acc.num_processes}", flush=True)


def _load(config: TrainConfig, model: Any, tokenizer: Any) -> tuple[Any, Any]:
    if model is not None and tokenizer is not None:
        return model, tokenizer
    if not config.model:
        raise ValueError("expected a model and tokenizer, or TrainConfig.model naming a Hugging Face folder, actual neither")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.zoo import looks_like_hub_id, resolve_model

    path = resolve_model(config.model)
    local = {} if looks_like_hub_id(path) else {"local_files_only": True}
    return (model or AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **local),
            tokenizer or AutoTokenizer.from_pretrained(path, **local))


def _reference_model(config: TrainConfig, model: Any) -> Any:
    """A frozen copy of the starting model for the KL penalty; with LoRA the adapters are switched off instead."""
    if not config.kl_coef or config.lora_r:
        return None
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


def _adapters_off(model: Any) -> Any:
    """The LoRA model with its adapters disabled, as a callable reference."""
    peft_model = getattr(model, "module", model)

    def forward(**kwargs: Any) -> Any:
        with peft_model.disable_adapter():
            return peft_model(**kwargs)

    return forward


class _PaddingWarningFilter(logging.Filter):
    """Drops transformers' "pass an attention_mask, your input_ids may be padded" warning.

    The trainer passes no mask on purpose (see :func:`policy_logprobs`): rows are right-padded and
    under causal attention no real token sees the padding after it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "recommend passing in an `attention_mask`" not in record.getMessage()


def _quiet_padding_warning() -> None:
    log = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _PaddingWarningFilter) for f in log.filters):
        log.addFilter(_PaddingWarningFilter())


def freeze_all_but_last_layers(model: Any, n: int) -> None:
    """Leave only the last ``n`` transformer blocks and the final norm trainable (``n=0``: change nothing)."""
    if not n:
        return
    blocks = _blocks(model)
    if blocks is None or n > len(blocks):
        raise ValueError(f"expected trainable_layers <= the model's {len(blocks) if blocks else '?'} blocks, actual {n}")
    model.requires_grad_(False)
    for block in blocks[len(blocks) - n:]:
        block.requires_grad_(True)
    inner = getattr(model, model.base_model_prefix, model)
    for name in ("norm", "ln_f", "final_layernorm"):
        if hasattr(inner, name):
            getattr(inner, name).requires_grad_(True)


def _blocks(model: Any) -> Any:
    inner = getattr(model, model.base_model_prefix, model)
    for name in ("layers", "h", "blocks"):
        if hasattr(inner, name):
            return getattr(inner, name)
    return None


def _trainable(config: TrainConfig, model: Any) -> Any:
    freeze_all_but_last_layers(model, config.trainable_layers)
    if config.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # newer transformers; the old name is deprecated
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not config.lora_r:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise ImportError(f'LoRA (TrainConfig.lora_r > 0) needs peft: pip install "swirl-rl[lora]" ({e})') from e
    targets = config.lora_target_modules
    targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    if config.gradient_checkpointing:
        model.enable_input_require_grads()
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _pad_id(tokenizer: Any) -> int:
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    return 0


def _reward_moments(micro: list[dict]) -> list[float]:
    """Count, sum and sum of squares of the rewards of the actions (not tokens) in ``micro``."""
    values = []
    for m in micro:
        ids, rewards = m["action_ids"], m["rewards"]
        mask = ids >= 0
        first = torch.zeros(int(m["n_actions"]), dtype=rewards.dtype).index_copy_(0, ids[mask].cpu(), rewards[mask].cpu())
        values.append(first)
    r = torch.cat(values).double() if values else torch.zeros(0, dtype=torch.float64)
    return [float(r.numel()), float(r.sum()), float((r * r).sum())]


def _accelerator(config: TrainConfig, out: Path) -> Any:
    """accelerate's Accelerator for this run. In one process where another library (TRL, say) already set up
    accelerate with other settings, that state is reset rather than refused."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    kwargs = dict(cpu=not torch.cuda.is_available(), mixed_precision=_precision(config.mixed_precision),
                  log_with=_trackers(config), project_dir=str(out / "trackers"))
    try:
        return Accelerator(**kwargs)
    except ValueError as e:
        if "already been initialized" not in str(e) or PartialState().num_processes > 1:
            raise
        AcceleratorState._reset_state(reset_partial_state=True)
        return Accelerator(**kwargs)


def _trackers(config: TrainConfig) -> Any:
    """accelerate's ``log_with``; a tracker that is not installed is an error (accelerate would drop it quietly)."""
    if not config.report_to:
        return None
    if "all" in config.report_to:
        return "all"
    from accelerate.tracking import get_available_trackers

    missing = [t for t in config.report_to if t not in {str(a) for a in get_available_trackers()}]
    if missing:
        raise ImportError(f"TrainConfig.report_to: expected installed trackers, actual {missing} not installed; "
                          'tensorboard: pip install "swirl-rl[track]" (wandb: pip install wandb; trackio: pip install trackio)')
    return list(config.report_to)
