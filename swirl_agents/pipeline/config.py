"""What ``swirl pipeline`` does, as one config that holds the trainer's configs instead of renaming them.

:class:`PipelineConfig` has the run's own settings (envs, questions, samples, filter, evaluation)
and three nested configs, each reachable from the command line with its prefix:

- ``recipe`` (:class:`RecipeConfig`, ``--recipe.vocab-size``): how the tiny base policy is made when no
  ``--model`` is given;
- ``sft`` (:class:`~swirl_agents.training.TrainConfig`, ``--sft.learning-rate``): the warm start, SFT
  on reference-agent episodes that teaches the action format;
- ``swirl`` (:class:`~swirl_agents.training.TrainConfig`, ``--swirl.max-steps``): every SWiRL round.

Every trainer setting (LoRA, precision, normalisation, sequence length, checkpointing, trackers, ...)
is reachable for both training stages; the pipeline only sets each stage's ``output_dir`` and
starting ``model``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from swirl_agents.training.config import TrainConfig

DEFAULT_ENVS = ("SwirlSynthQA-v0", "SwirlSynthMath-v0")
STRATEGIES = ("none", "outcome", "process", "process+outcome")

def env_kwargs_for(env_id: str, overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``gym.make`` arguments for ``env_id`` beyond its registered defaults: ``overrides[env_id]`` (the
    ``--env-kwargs`` of ``swirl pipeline``, ``generate`` and ``evaluate``, one format everywhere).

    Example:
        >>> env_kwargs_for("SwirlSynthQA-v0", {"SwirlSynthQA-v0": {"max_steps": 4}})
        {'max_steps': 4}
    """
    return dict((overrides or {}).get(env_id, {}))


@dataclass
class RecipeConfig:
    """How the tiny base policy is made (used when no ``--model`` is given)."""

    vocab_size: int = 4096
    """Tokenizer vocabulary size (BPE fitted on the reference episodes and the search corpus)."""
    max_number: int = 2100
    """Whole numbers from 0 to this (years included) are single tokens."""
    n_layer: int = 2
    """Transformer blocks of the tiny model (at least 2: the first two hold the copying circuit)."""
    n_embd: int = 192
    """Hidden size of the tiny model."""
    n_head: int = 6
    """Attention heads of the tiny model; ``copy_heads`` of them in each of the first two layers start as copiers."""
    copy_heads: int = 2
    """Previous-token heads (layer 0) and induction heads (layer 1) wired in at initialisation; 0: plain random init."""
    max_positions: int = 2048
    """Longest sequence the tiny model handles, in tokens (a whole episode must fit)."""
    entity_tokens: int = 20000
    """Titles of the search corpus (entity names) that become single tokens, at most this many; 0: none. Copying a
    name from a search result into the next query is then copying one token, which a 2-layer model does well."""


def default_sft() -> TrainConfig:
    """The warm start: SFT on every step of the reference episodes, mistakes included.

    2500 steps rather than 1000: the tiny base policy then solves more than twice the bridge questions
    (12 of 132 against 5 on seed 0), and SWiRL lifts QA as well as maths.
    """
    return TrainConfig(objective="sft", learning_rate=3e-3, max_steps=2500, warmup_ratio=0.05,
                       max_tokens_per_batch=2048, log_every=25, save_every=250)


def default_swirl() -> TrainConfig:
    """Each SWiRL round: three passes over the kept data, at most 300 steps, a third of the SFT rate.

    At 1e-3 the built-in world's QA steps, of which the filter keeps few, got worse while maths improved.
    """
    return TrainConfig(objective="swirl", learning_rate=3e-4, num_epochs=3.0, max_steps=300, warmup_ratio=0.05,
                       max_tokens_per_batch=2048, log_every=10, save_every=100)


def model_sft() -> TrainConfig:
    """A real model's warm start on a CPU: the last 4 blocks trained (no backward pass through the other 26 of
    SmolLM2-135M), two passes over the reference episodes, at most 60 steps."""
    return TrainConfig(objective="sft", learning_rate=2e-4, num_epochs=2.0, max_steps=60, warmup_ratio=0.1,
                       max_tokens_per_batch=4096, trainable_layers=4, max_seq_len=2048, log_every=5, save_every=10)


def model_swirl() -> TrainConfig:
    """A real model's SWiRL round on a CPU: the same 4 blocks, two passes over the kept data, at most 30 steps."""
    return TrainConfig(objective="swirl", learning_rate=1e-4, num_epochs=2.0, max_steps=30, warmup_ratio=0.1,
                       max_tokens_per_batch=4096, trainable_layers=4, max_seq_len=2048, log_every=2, save_every=10)


MODEL_DEFAULTS: dict[str, Any] = dict(
    envs=("SwirlHotpot-v0", "SwirlGSM8K-v0"),
    env_kwargs={"SwirlHotpot-v0": {"top_k": 2, "max_result_chars": 1200, "max_steps": 4},
                "SwirlGSM8K-v0": {"max_steps": 6}},
    rounds=1, warm_start_questions=60, train_questions=32, samples_per_question=4, temperature=0.7, eval_questions=40,
    batch_size=16, max_new_tokens=64, threads=0,
)
"""``swirl pipeline --model`` sized for about 45 minutes per seed on 2 quiet CPU cores (measured: 42 minutes with both
cores, seed 3, the last few minutes beside a test run; 52 to 63 minutes on one torch thread while the other core ran
another job, seeds 0-2 of ``benchmarks/results/real_model.md``): short contexts (two passages of at most
1,200 characters per search, four QA steps, six maths steps), 60 warm-start questions per env (HotpotQA's train file
here has 100), one SWiRL round of 32 questions x 4 samples per env, 40 held-out questions per env, steps of at most 64 tokens."""


@dataclass
class PipelineConfig:
    """Everything ``swirl pipeline`` does; the defaults are the CPU main job on the built-in world.

    Example:
        >>> PipelineConfig(rounds=2).strategy, PipelineConfig().swirl.learning_rate
        ('process', 0.0003)
        >>> PipelineConfig(strategy="best")
        Traceback (most recent call last):
        ...
        ValueError: PipelineConfig.strategy: expected one of ('none', 'outcome', 'process', 'process+outcome'), actual 'best'
    """

    run_dir: str = "runs/pipeline"
    """Folder of the run. Re-running with the same folder resumes it (a changed setting is refused: use another folder)."""
    envs: tuple[str, ...] = DEFAULT_ENVS
    """Env ids; one policy is trained on their mixture and evaluated on each."""
    model: str = ""
    """Model to start from: a named model (smollm2-135m-instruct), a .gguf file, a model folder or a hub id;
    empty: build the tiny base policy (``--recipe.*``)."""
    seed: int = 0
    """Seeds the base policy, sampling, training and evaluation."""
    rounds: int = 3
    """SWiRL rounds; each samples with the latest policy on the next train questions (``round_questions``) and trains
    it further. Three on the built-in world: QA accuracy rises each round (seed 0: 0.235 base, 0.275, 0.305, 0.370).
    Round 3 wraps around the 2,000 train questions into the warm start's, which the policy solves far more often,
    so the process filter keeps many more QA trajectories (seed 0: 75, 221, then 828 of 1,600). About 5 minutes a
    round on one loaded core."""
    train_questions: int = 200
    """Train questions per env and round (taken after the warm start's questions when there are enough)."""
    samples_per_question: int = 8
    """Trajectories sampled per train question."""
    temperature: float = 0.5
    """Sampling temperature for the generated trajectories (lower keeps a small policy's steps on track)."""
    strategy: str = "process"
    """Data filter: ``none``, ``outcome``, ``process`` (every step judged GOOD) or ``process+outcome``."""
    judge: str = "reference"
    """Step judge: ``reference`` (gold-guided), ``outcome``, or ``llm:MODEL`` / ``llm-logprob:MODEL``."""
    eval_questions: int = 200
    """Held-out questions per env for evaluation."""
    eval_split: str = ""
    """Held-out split the policies are evaluated on; empty: each env's own (``test`` for the built-in world and
    GSM8K, ``dev`` for HotpotQA, ...)."""
    eval_temperature: float = 0.0
    """Evaluation sampling temperature; 0 is greedy."""
    warm_start_questions: int = 1500
    """Train questions per env that the reference agent plays for the warm start (SFT); 0 skips the warm start
    (only with ``--model``)."""
    warm_start_mistake_rate: float = 0.2
    """Share of the reference agent's steps that are deliberate mistakes in the warm-start data."""
    train_split: str = "train"
    """Split whose questions are used for the warm start and the SWiRL rounds."""
    env_kwargs: dict[str, dict] = field(default_factory=dict)
    """Per-env arguments over the pipeline's defaults, e.g. ``{"SwirlSynthQA-v0": {"top_k": 3}}`` (JSON)."""
    batch_size: int = 64
    """Episodes generated in lockstep (and prompts per generate call)."""
    max_new_tokens: int = 48
    """Longest step the policy may write, in tokens."""
    device: str = ""
    """Where models run: ``cpu``, ``cuda``, ...; empty: a GPU when there is one."""
    threads: int = 1
    """CPU threads for torch; 0: torch's default (one per core). The tiny policy is too small to gain from more than
    one (on 2 shared cores, 1 thread was 1.7x faster than 2); the real-model recipe uses 0."""
    progress: bool = True
    """Show progress bars and stage messages."""
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    """How the tiny base policy is made (without ``--model``)."""
    sft: TrainConfig = field(default_factory=default_sft)
    """The warm start's trainer settings."""
    swirl: TrainConfig = field(default_factory=default_swirl)
    """Every SWiRL round's trainer settings."""

    def __post_init__(self) -> None:
        import gymnasium as gym

        import swirl_env  # noqa: F401  (registers the env ids)

        if self.strategy not in STRATEGIES:
            raise ValueError(f"PipelineConfig.strategy: expected one of {STRATEGIES}, actual {self.strategy!r}")
        if not self.envs:
            raise ValueError("PipelineConfig.envs: expected at least one env id, actual none")
        unknown = [e for e in self.envs if e not in gym.registry]
        if unknown:
            raise ValueError(f"PipelineConfig.envs: expected registered env ids, actual {unknown}; "
                             f"known: {sorted(i for i in gym.registry if i.startswith('Swirl'))}")
        for name in ("rounds", "train_questions", "samples_per_question", "eval_questions", "batch_size",
                     "max_new_tokens", "warm_start_questions", "threads"):
            if getattr(self, name) < (0 if name in ("rounds", "warm_start_questions", "threads") else 1):
                raise ValueError(f"PipelineConfig.{name}: expected a positive integer, actual {getattr(self, name)!r}")
        if not self.model and not self.warm_start_questions:
            raise ValueError("PipelineConfig.warm_start_questions: the tiny base policy is made by the warm start; "
                             "expected > 0 without --model, actual 0")
        if not 0.0 <= self.warm_start_mistake_rate <= 1.0:
            raise ValueError(f"PipelineConfig.warm_start_mistake_rate: expected a share in [0, 1], "
                             f"actual {self.warm_start_mistake_rate!r}")
        self.envs = tuple(self.envs)

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> PipelineConfig:
        """The pipeline's defaults for a real pretrained ``model`` (the CPU recipe of :data:`MODEL_DEFAULTS`), then
        ``overrides``. ``swirl pipeline --model X`` starts from these; without ``--model``, from the tiny main job's.

        Example:
            >>> c = PipelineConfig.for_model("smollm2-135m-instruct", seed=1)
            >>> c.envs, c.sft.trainable_layers, c.seed
            (('SwirlHotpot-v0', 'SwirlGSM8K-v0'), 4, 1)
        """
        values = {**MODEL_DEFAULTS, "sft": model_sft(), "swirl": model_swirl(), "model": model, **overrides}
        return cls(**values)

    def train_config(self, stage: str, output_dir: str, model: str = "") -> TrainConfig:
        """The ``sft`` or ``swirl`` trainer config for one run of that stage: its own folder, model and seed."""
        return dataclasses.replace(getattr(self, stage), output_dir=output_dir, model=model, seed=self.seed,
                                   progress=self.progress)
