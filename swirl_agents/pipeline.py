"""The whole SWiRL loop in one call: base policy, generate, judge, filter, train, evaluate, report.

``swirl pipeline`` runs :func:`run_pipeline` with :class:`PipelineConfig`'s defaults: on the built-in
world (no data files), a tiny model made on the CPU (:mod:`swirl_agents.recipe`) is the base
policy; one SWiRL round samples trajectories from it on train questions, judges every step with the
gold-guided reference judges, keeps the process-filtered trajectories and trains on them step by
step; both policies are then evaluated on held-out test questions. A run folder describes itself::

    runs/<timestamp>/
      config.json  versions.json  metrics.json  report.md  eval.png  training.png
      base/                      the tiny base policy (reference.jsonl, sft/final/), or absent with --model
      round_1/episodes.jsonl     sampled trajectories   judgments.jsonl  filter.json
      round_1/train/             trainer output: metrics.jsonl, run_info.json, final/ (the new policy)
      eval/<policy>/<env>.jsonl  evaluation episodes and results.json
      judgments.sqlite           the judgment cache

Every stage writes a ``done`` marker (or is resumable on its own), so running again with the same
``run_dir`` skips what is finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents import __version__
from swirl_agents.configs import to_dict
from swirl_agents.episodes import read_episodes
from swirl_agents.filters import STRATEGIES, filter_transitions
from swirl_agents.recipe import RecipeConfig, build_base_policy, env_kwargs_for, reference_judge
from swirl_agents.runinfo import versions

DEFAULT_ENVS = ("SwirlSynthQA-v0", "SwirlSynthMath-v0")


@dataclass
class PipelineConfig(RecipeConfig):
    """Everything ``swirl pipeline`` does; the defaults are the CPU main job on the built-in world.

    Example:
        >>> PipelineConfig(rounds=2).strategy
        'process'
        >>> PipelineConfig(strategy="best")
        Traceback (most recent call last):
        ...
        ValueError: PipelineConfig.strategy: expected one of ('none', 'outcome', 'process', 'process+outcome'), actual 'best'
    """

    run_dir: str = ""
    """Folder of the run; empty: ``runs/<timestamp>``. Re-running with the same folder resumes it."""
    envs: tuple[str, ...] = DEFAULT_ENVS
    """Env ids; one policy is trained on their mixture and evaluated on each."""
    env_kwargs: dict[str, dict] = field(default_factory=dict)
    """Per-env arguments over the recipe's defaults, e.g. ``{"SwirlSynthQA-v0": {"top_k": 3}}``."""
    model: str = ""
    """Hugging Face causal LM (folder or hub id) to start from; empty: build the tiny base policy."""
    seed: int = 0
    """Seeds the base policy, sampling, training and evaluation."""
    rounds: int = 1
    """SWiRL rounds; each generates with the latest policy and trains it further."""
    train_split: str = "train"
    """Split whose questions are used to generate training trajectories."""
    train_questions: int = 200
    """Train questions per env and round (taken after the recipe's SFT questions when there are enough)."""
    samples_per_question: int = 8
    """Trajectories sampled per train question."""
    temperature: float = 0.5
    """Sampling temperature for the generated trajectories (lower keeps a small policy's steps on track)."""
    strategy: str = "process"
    """Data filter: ``none``, ``outcome``, ``process`` (every step judged GOOD) or ``process+outcome``."""
    swirl_epochs: float = 3.0
    """Passes over a round's kept transitions (fewer steps when the filter keeps little data)."""
    swirl_steps: int = 300
    """Most optimizer steps of a SWiRL round."""
    learning_rate: float = 3e-4
    """Peak learning rate of each SWiRL round (cosine decay, 5% warmup); a third of the SFT rate (at 1e-3 the
    built-in world's QA steps, of which the filter keeps few, got worse while maths improved)."""
    tokens_per_batch: int = 2048
    """Padded tokens per SWiRL optimizer step."""
    baseline: str = "none"
    """Advantage baseline of the SWiRL loss (``none`` for process-filtered data: every kept step has reward 1)."""
    kl_coef: float = 0.0
    """KL penalty to the round's starting policy; 0 disables it."""
    eval_split: str = ""
    """Held-out split the policies are evaluated on; empty: each env's own (``test`` for the built-in world
    and GSM8K, ``dev`` for HotpotQA, ...)."""
    eval_questions: int = 200
    """Held-out questions per env for evaluation."""
    eval_temperature: float = 0.0
    """Evaluation sampling temperature; 0 is greedy."""
    batch_size: int = 64
    """Episodes generated in lockstep (and prompts per generate call)."""
    max_new_tokens: int = 48
    """Longest step the policy may write, in tokens."""
    threads: int = 0
    """CPU threads for torch; 0 keeps torch's default."""
    progress: bool = True
    """Show progress bars and training metrics."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"PipelineConfig.strategy: expected one of {STRATEGIES}, actual {self.strategy!r}")
        if not self.envs:
            raise ValueError("PipelineConfig.envs: expected at least one env id, actual none")
        unknown = [e for e in self.envs if e not in gym.registry]
        if unknown:
            raise ValueError(f"PipelineConfig.envs: expected registered env ids, actual {unknown}; "
                             f"known: {sorted(i for i in gym.registry if i.startswith('Swirl'))}")
        for name in ("rounds", "train_questions", "samples_per_question", "eval_questions", "batch_size",
                     "max_new_tokens", "swirl_steps", "base_questions", "sft_steps"):
            if getattr(self, name) < (0 if name in ("rounds", "base_questions") else 1):
                raise ValueError(f"PipelineConfig.{name}: expected a positive integer, actual {getattr(self, name)!r}")
        self.envs = tuple(self.envs)

    def recipe(self) -> RecipeConfig:
        """The tiny-model recipe part of this config."""
        return RecipeConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(RecipeConfig)})


@dataclass
class PipelineResult:
    """What :func:`run_pipeline` produced."""

    run_dir: Path
    policies: dict[str, str]
    """Policy name (``base``, ``round_1``, ...) -> model folder or id."""
    evals: dict[str, dict[str, dict[str, Any]]]
    """Policy name -> env id -> :class:`~swirl_agents.evaluate.EvalResult` as a dict."""
    timings: dict[str, float]
    """Stage -> seconds; a stage skipped by this call reports what its first run took (its ``done`` marker)."""
    skipped: list[str]
    """Stages this call found done and skipped (a resumed run)."""
    table: str
    """The markdown table of ``report.md``."""


def run_pipeline(config: PipelineConfig) -> PipelineResult:
    """Run (or resume) the SWiRL pipeline described by ``config``; return the policies and their metrics.

    Example:
        >>> import tempfile
        >>> cfg = PipelineConfig(run_dir=tempfile.mkdtemp(), envs=("SwirlSynthMath-v0",), base_questions=8,
        ...                      vocab_size=400, n_embd=48, copy_heads=1, sft_steps=2, train_questions=2,
        ...                      samples_per_question=1, swirl_steps=1, eval_questions=2, max_new_tokens=8,
        ...                      progress=False)
        >>> result = run_pipeline(cfg)  # doctest: +SKIP
        >>> list(result.evals)  # doctest: +SKIP
        ['base', 'round_1']
    """
    with _torch_threads(config.threads):
        return _run(config)


def _run(config: PipelineConfig) -> PipelineResult:
    from swirl_agents.report import write_report

    run = Path(config.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    run.mkdir(parents=True, exist_ok=True)
    _write_json(run / "config.json", to_dict(config))
    _write_json(run / "versions.json", versions())
    stages = _Stages(config)
    _say(config, f"run folder {run}")
    policies = {"base": _base_policy(config, run, stages)}
    for r in range(1, config.rounds + 1):
        policies[f"round_{r}"] = _round(config, run, r, policies[f"round_{r - 1}" if r > 1 else "base"], stages)
    evals = {name: _evaluate_policy(config, run, name, path, stages) for name, path in policies.items()}
    metrics = {"config": to_dict(config), "versions": versions(), "policies": policies, "evals": evals,
               "rounds": [_read_json(run / f"round_{r}" / "filter.json") for r in range(1, config.rounds + 1)],
               "timings": stages.timings, "skipped": stages.skipped}
    _write_json(run / "metrics.json", metrics)
    table = write_report(run, metrics)
    print(table, flush=True)
    return PipelineResult(run, policies, evals, stages.timings, stages.skipped, table)


# --- stages ----------------------------------------------------------------------------------------


@dataclass
class _Stages:
    """Runs each stage once and keeps its wall time: a stage whose ``done`` marker exists is skipped."""

    config: PipelineConfig
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def run(self, folder: Path, title: str) -> Iterator[bool]:
        """Yields True when ``folder/done`` exists (skip the body), else times the body and writes the marker."""
        marker = folder / "done"
        if marker.exists():
            self.timings[title] = json.loads(marker.read_text()).get("seconds", 0.0)
            self.skipped.append(title)
            _say(self.config, f"{title}: done already, skipped")
            yield True
            return
        _say(self.config, f"{title} ...")
        start = time.perf_counter()
        yield False
        seconds = self.timings[title] = time.perf_counter() - start
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        _say(self.config, f"{title}: {seconds:.1f} s")


def _base_policy(config: PipelineConfig, run: Path, stages: _Stages) -> str:
    if config.model:
        return config.model
    with stages.run(run / "base", "base policy (tiny recipe)") as done:
        path = run / "base" / "sft" / "final"
        if not done:
            build_base_policy(run / "base", config.envs, config.recipe(), env_kwargs=config.env_kwargs,
                              split=config.train_split, seed=config.seed, progress=config.progress)
    return str(path)


def _round(config: PipelineConfig, run: Path, r: int, policy: str, stages: _Stages) -> str:
    folder = run / f"round_{r}"
    episodes_path = folder / "episodes.jsonl"
    final = folder / "train" / "final"
    with stages.run(folder / "generate", f"round {r}: generate") as done:
        if not done:
            agent = _agent(config, policy, config.temperature, seed=config.seed * 1000 + r)
            for env_id in config.envs:
                env = gym.make(env_id, split=config.train_split, **env_kwargs_for(env_id, config.env_kwargs))
                from swirl_agents.rollout import generate_episodes

                summary = generate_episodes(env, agent, out=episodes_path, question_ids=_round_questions(config, env, r),
                                            samples_per_question=config.samples_per_question,
                                            batch_size=config.batch_size, seed=config.seed * 1000 + r,
                                            progress=config.progress)
                _say(config, f"{env_id}: {summary.episodes_written} episodes, accuracy {summary.accuracy:.3f}")
    with stages.run(folder / "judge", f"round {r}: judge + filter") as done:
        if not done:
            _judge_and_filter(config, run, folder)
    with stages.run(folder / "train", f"round {r}: train (SWiRL)") as done:
        if not done:
            _train_round(config, folder, policy)
    return str(final) if (final / "config.json").exists() else policy


def _judge_and_filter(config: PipelineConfig, run: Path, folder: Path) -> None:
    from swirl_agents.episodes import write_transitions
    from swirl_agents.judges import judge_episodes, write_judgments

    episodes = list(read_episodes(folder / "episodes.jsonl"))
    judgments: dict = {}
    for env_id in config.envs:
        env = gym.make(env_id, split=config.train_split, **env_kwargs_for(env_id, config.env_kwargs))
        mine = [ep for ep in episodes if ep.env_id == env_id]
        judgments.update(judge_episodes(mine, _cached(run, reference_judge(env)), progress=config.progress))
    write_judgments(folder / "judgments.jsonl", judgments)
    transitions, stats = filter_transitions(episodes, judgments, config.strategy)
    write_transitions(folder / "transitions.jsonl", transitions)
    per_env = {}
    for env_id in config.envs:
        mine = [ep for ep in episodes if ep.env_id == env_id]
        _, env_stats = filter_transitions(mine, {ep.episode_id: judgments[ep.episode_id] for ep in mine},
                                          config.strategy)
        per_env[env_id] = {**dataclasses.asdict(env_stats),
                           "sample_accuracy": sum(ep.correct for ep in mine) / max(len(mine), 1)}
    _write_json(folder / "filter.json", {**dataclasses.asdict(stats), "per_env": per_env})
    _say(config, str(stats))


def _train_round(config: PipelineConfig, folder: Path, policy: str) -> None:
    """Train SWiRL on the round's kept transitions, starting from ``policy``; the new policy is ``train/final``."""
    from swirl_agents.episodes import read_transitions
    from swirl_agents.training import TrainConfig, train

    transitions = read_transitions(folder / "transitions.jsonl")
    if not transitions:
        # Whatever the outcome: a round whose filter kept nothing leaves the policy as it was, and says so.
        _say(config, f"no transitions kept by strategy {config.strategy!r} (see {folder / 'filter.json'}): "
                     "this round does not train; sample more (--samples-per-question, --train-questions) or use --strategy none")
        return
    train_dir = folder / "train"
    (train_dir / "metrics.jsonl").unlink(missing_ok=True)  # an interrupted round trains again from its start
    steps = swirl_steps(config, policy, transitions)
    tc = TrainConfig(output_dir=str(train_dir), model=policy, objective="swirl", learning_rate=config.learning_rate,
                     max_steps=steps, warmup_steps=max(steps // 20, 1),
                     max_tokens_per_batch=config.tokens_per_batch, baseline=config.baseline,
                     kl_coef=config.kl_coef, seed=config.seed, log_every=10, print_metrics=config.progress)
    train(tc, transitions)


def swirl_steps(config: PipelineConfig, policy: str, transitions: list) -> int:
    """Optimizer steps for ``swirl_epochs`` passes over the episodes of ``transitions``, at most ``swirl_steps``.

    One pass costs about (tokens of each episode's longest state + action) / ``tokens_per_batch``
    steps, since the trainer packs an episode's transitions into one row.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(policy, local_files_only=Path(policy).exists())
    longest: dict[str, str] = {}
    for t in transitions:
        if len(t.state) + len(t.action) > len(longest.get(t.episode_id, "")):
            longest[t.episode_id] = t.state + t.action
    tokens = sum(len(ids) for ids in tokenizer(list(longest.values()))["input_ids"])
    return max(1, min(config.swirl_steps, round(config.swirl_epochs * tokens / config.tokens_per_batch)))


def _evaluate_policy(config: PipelineConfig, run: Path, name: str, policy: str,
                     stages: _Stages) -> dict[str, dict[str, Any]]:
    from swirl_agents.evaluate import evaluate

    folder = run / "eval" / name
    with stages.run(folder, f"evaluate {name}") as done:
        if not done:
            agent = _agent(config, policy, config.eval_temperature, seed=config.seed)
            results = {}
            for env_id in config.envs:
                kwargs = env_kwargs_for(env_id, config.env_kwargs)
                split = eval_split(config, env_id)
                judge = _cached(run, reference_judge(gym.make(env_id, split=split, **kwargs)))
                result = evaluate(env_id, agent, out=folder / f"{env_id}.jsonl", split=split,
                                  num_questions=config.eval_questions, judge=judge, batch_size=config.batch_size,
                                  seed=config.seed, progress=config.progress, env_kwargs=kwargs)
                results[env_id] = result.to_dict()
                _say(config, f"{name} on {env_id}: accuracy {result.accuracy:.3f}, "
                             f"process label accuracy {result.process_label_accuracy:.3f}")
            _write_json(folder / "results.json", results)
    return _read_json(folder / "results.json")


# --- helpers -----------------------------------------------------------------------------------------


def _agent(config: PipelineConfig, policy: str, temperature: float, *, seed: int) -> Any:
    from swirl_agents.agents.hf import TransformersAgent

    return TransformersAgent(policy, temperature=temperature, do_sample=temperature > 0, seed=seed,
                             batch_size=config.batch_size, max_new_tokens=config.max_new_tokens)


def eval_split(config: PipelineConfig, env_id: str) -> str:
    """The split ``env_id`` is evaluated on: ``config.eval_split``, else the data set's evaluation split.

    Example:
        >>> [eval_split(PipelineConfig(), e) for e in ("SwirlSynthQA-v0", "SwirlHotpot-v0", "SwirlGSM8K-v0")]
        ['test', 'dev', 'test']
    """
    from swirl_env.data.loaders import DATASETS

    if config.eval_split:
        return config.eval_split
    dataset = gym.registry[env_id].kwargs.get("dataset", "")
    # The built-in world's env default is its train split (for play); its held-out questions are "test".
    return next(iter(DATASETS[dataset])) if dataset in DATASETS else "test"


def _round_questions(config: PipelineConfig, env: gym.Env, r: int) -> list[str]:
    """Round ``r``'s train questions: the ones after the SFT questions when the split has enough, else from the start."""
    ids = [q.id for q in env.unwrapped.questions]
    n = min(config.train_questions, len(ids))
    start = (0 if config.model else config.base_questions) + (r - 1) * n
    if start + n > len(ids):
        start = ((r - 1) * n) % max(len(ids) - n + 1, 1)
    return ids[start : start + n]


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Use ``threads`` torch threads inside the block (0: leave torch's setting alone), then restore."""
    if not threads:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _cached(run: Path, judge: Any) -> Any:
    from swirl_agents.judges import CachedJudge, JudgmentCache

    return CachedJudge(judge, JudgmentCache(run / "judgments.sqlite"))


def _say(config: PipelineConfig, message: str) -> None:
    if config.progress:
        print(f"[swirl.pipeline] {message}", file=sys.stderr, flush=True)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())
