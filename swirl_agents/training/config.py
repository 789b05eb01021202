"""The trainer's configuration: one dataclass, one line of documentation per field (the CLI's ``--help``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

OBJECTIVES = ("swirl", "sft", "trajectory")
NORMALIZATIONS = ("token", "action", "sequence")
BASELINES = ("none", "mean", "whiten")
KL_ESTIMATORS = ("k1", "k3")

LR_SCHEDULES = ("cosine", "constant")
MIXED_PRECISION = ("auto", "no", "bf16")


@dataclass
class TrainConfig:
    """Everything a step-wise RL run needs besides the data and the model.

    Example:
        >>> TrainConfig(output_dir="runs/x", objective="sft").objective
        'sft'
        >>> TrainConfig(output_dir="runs/x", normalize="tokens")
        Traceback (most recent call last):
        ...
        ValueError: TrainConfig.normalize: expected one of ('token', 'action', 'sequence'), actual 'tokens'
    """

    output_dir: str = field(default="", metadata={"nested": False})
    """Folder for checkpoints, metrics.jsonl, run_info.json and the final model (``final/``)."""
    model: str = field(default="", metadata={"nested": False})
    """Model to start from when ``train`` is not given a model object: a named model, a .gguf file, a folder or a hub id."""
    objective: str = "swirl"
    """``swirl``: each action its own reward; ``sft``: every action weight 1; ``trajectory``: each action the episode's outcome."""
    normalize: str = "token"
    """Loss normaliser: ``token`` (paper objective / action tokens), ``action`` (mean per action), ``sequence`` (mean per episode)."""
    baseline: str = "none"
    """Reward to advantage over each optimizer step's actions: ``none``, ``mean`` (subtract mean) or ``whiten`` (and divide by std)."""
    kl_coef: float = 0.0
    """Weight of the KL penalty to the frozen starting model on action tokens; 0 disables it (and the reference copy)."""
    kl_estimator: str = "k3"
    """Per-token KL estimator: ``k3`` (non-negative, low variance) or ``k1`` (log pi - log pi_ref)."""
    packed: bool = True
    """One row per episode holding all its kept actions; False trains one row per transition (for comparison)."""
    learning_rate: float = 1e-5
    """Peak AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    lr_schedule: str = "cosine"
    """After warmup: ``cosine`` decay to zero at the last step, or ``constant``."""
    warmup_steps: int = 0
    """Linear warmup steps from 0 to ``learning_rate``."""
    warmup_ratio: float = 0.0
    """Warmup as a share of the run's steps (the larger of this and ``warmup_steps`` applies)."""
    num_epochs: float = 0.0
    """Passes over the data (fractions allowed); 0: one pass, or ``max_steps`` steps when that is set."""
    max_steps: int = 0
    """Most optimizer steps; with ``num_epochs`` the run stops at whichever comes first. 0: no cap."""
    max_tokens_per_batch: int = 8192
    """Micro-batch budget in padded tokens (rows x longest row); rows are length-sorted into batches, a longer row gets one alone."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step on each process."""
    max_seq_len: int = 0
    """Longest row in tokens; 0 uses the model's ``max_position_embeddings``. Longer episodes are split (see data.py)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm; 0 disables clipping."""
    mixed_precision: str = "auto"
    """``auto`` (bf16 autocast on a CUDA GPU that supports it, else float32), ``no`` or ``bf16``."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about 30% more compute."""
    trainable_layers: int = 0
    """Train only the last N transformer blocks (and the final norm); 0 trains every layer. On a CPU this skips the
    backward pass through the frozen blocks: with a 30-layer model and N=4, a step costs little more than a forward pass."""
    lora_r: int = 0
    """LoRA rank; 0 trains all parameters. Needs ``pip install "swirl-rl[lora]"``."""
    lora_alpha: int = 16
    """LoRA scaling numerator."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch."""
    lora_target_modules: str = "all-linear"
    """Modules that get adapters: ``all-linear`` or comma-separated names (``q_proj,v_proj``)."""
    seed: int = 0
    """Seeds data order and any randomness in the model."""
    shuffle: bool = True
    """Shuffle the order of micro-batches every epoch (rows inside a batch stay length-sorted)."""
    save_every: int = 0
    """Save a resumable checkpoint (model, optimizer, scheduler, RNG, step = data position) every N steps; 0: never."""
    resume_from: str = field(default="latest", metadata={"nested": False})
    """``latest``: resume from the newest intact checkpoint under ``output_dir/checkpoints`` when there is one
    (re-running a command resumes it); a checkpoint folder; or ``none`` to start from step 0."""
    log_every: int = 1
    """Write metrics to ``metrics.jsonl`` every this many optimizer steps."""
    progress: bool = True
    """Show a progress bar with rate, ETA and the latest loss."""
    print_metrics: bool = False
    """Also print each metrics record to stdout."""
    report_to: tuple[str, ...] = ()
    """Experiment trackers through accelerate: ``tensorboard``, ``trackio``, ``wandb`` (offline: ``WANDB_MODE=offline``),
    ``all``; files go under ``output_dir/trackers``. ``metrics.jsonl`` is always written."""
    save_final: bool = True
    """Save the final model + tokenizer in Hugging Face format under ``output_dir/final`` (LoRA merged)."""

    def __post_init__(self) -> None:
        for name, choices in (("objective", OBJECTIVES), ("normalize", NORMALIZATIONS), ("baseline", BASELINES),
                              ("kl_estimator", KL_ESTIMATORS), ("lr_schedule", LR_SCHEDULES),
                              ("mixed_precision", MIXED_PRECISION)):
            if getattr(self, name) not in choices:
                raise ValueError(f"TrainConfig.{name}: expected one of {choices}, actual {getattr(self, name)!r}")
        for name in ("max_tokens_per_batch", "grad_accum_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}: expected an integer >= 1, actual {getattr(self, name)!r}")
        for name in ("kl_coef", "weight_decay", "warmup_steps", "max_steps", "max_seq_len", "max_grad_norm",
                     "lora_r", "lora_dropout", "save_every", "trainable_layers"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name}: expected a value >= 0, actual {getattr(self, name)!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"TrainConfig.learning_rate: expected > 0, actual {self.learning_rate!r}")
        if self.num_epochs < 0:
            raise ValueError(f"TrainConfig.num_epochs: expected a value >= 0, actual {self.num_epochs!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"TrainConfig.warmup_ratio: expected a share in [0, 1), actual {self.warmup_ratio!r}")
        if self.baseline != "none" and self.objective == "sft":
            raise ValueError(f"TrainConfig.baseline: expected 'none' with objective='sft' (all weights are 1, "
                             f"a baseline zeroes them), actual {self.baseline!r}")

    def warmup(self, total: int) -> int:
        """Warmup steps of a run of ``total`` steps."""
        return max(self.warmup_steps, round(self.warmup_ratio * total))

    def total_steps(self, micro_batches: int, processes: int = 1) -> int:
        """Optimizer steps of a run over ``micro_batches`` micro-batches: epochs, capped by ``max_steps``.

        Example:
            >>> TrainConfig(output_dir="x", max_steps=300, num_epochs=3).total_steps(40), TrainConfig(output_dir="x").total_steps(40)
            (120, 40)
        """
        per_step = processes * self.grad_accum_steps
        if self.num_epochs == 0 and self.max_steps:
            return self.max_steps
        epochs = math.ceil((self.num_epochs or 1.0) * micro_batches / per_step)
        return max(1, min(epochs, self.max_steps) if self.max_steps else epochs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
