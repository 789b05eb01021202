"""The whole SWiRL loop in one call: base policy, generate, judge, filter, train, evaluate, report.

``swirl pipeline`` runs :func:`run_pipeline` with :class:`~swirl_agents.pipeline.config.PipelineConfig`'s
defaults: on the built-in world (no data files), a tiny model made on the CPU is warm-started into the
base policy; each SWiRL round (three by default, ``--rounds``) samples trajectories from the latest
policy on its own train questions, judges every step with the gold-guided reference judges, keeps the
process-filtered trajectories and trains on them step by step; every policy is then evaluated on
held-out questions. With ``--model`` a real model starts instead (one round by default, and evaluated
untouched too, before its warm start). A run folder describes itself::

    runs/pipeline/
      config.json  versions.json  metrics.json  report.md  eval.png  training.png
      base/                      the warm start: reference.jsonl, sft/ (checkpoints, final/), recipe.json
      round_1/episodes.jsonl     sampled trajectories   judgments.jsonl  transitions.jsonl  filter.json
      round_1/train/             trainer output: metrics.jsonl, run_info.json, checkpoints/, final/ (the new policy)
      round_2/ round_3/          the same for each further round, starting from the previous round's policy
      eval/<policy>/<env>.jsonl  evaluation episodes and results.json
      judgments.sqlite           the judgment cache

Every stage writes a ``done`` marker (the trainers and rollouts also resume mid-stage), so running the
same command again picks up where it stopped; a run folder whose recorded config differs from the new
one is refused rather than mixed. One process writes a run folder at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from swirl_agents.configs import to_dict
from swirl_agents.episodes import read_episodes, write_transitions
from swirl_agents.jsonl import folder_lock
from swirl_agents.pipeline.config import PipelineConfig, env_kwargs_for
from swirl_agents.runinfo import versions

IGNORED_ON_RESUME = ("progress", "threads", "run_dir")
"""Settings that do not change results: a run folder is resumed whatever they are (``run_dir`` too: the folder is the
one being resumed, however its path is spelt, relative or absolute, or wherever it was moved)."""


@dataclass
class PipelineResult:
    """What :func:`run_pipeline` produced."""

    run_dir: Path
    policies: dict[str, str]
    """Policy name (``untouched``, ``base``, ``round_1``, ...) -> model folder or name."""
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
        >>> from swirl_agents.pipeline.config import RecipeConfig
        >>> from swirl_agents.training import TrainConfig
        >>> cfg = PipelineConfig(run_dir=tempfile.mkdtemp(), envs=("SwirlSynthMath-v0",), warm_start_questions=8,
        ...                      recipe=RecipeConfig(vocab_size=400, n_embd=48, copy_heads=1), train_questions=2,
        ...                      sft=TrainConfig(objective="sft", max_steps=2), samples_per_question=1,
        ...                      swirl=TrainConfig(max_steps=1), eval_questions=2, max_new_tokens=8, rounds=1,
        ...                      progress=False)
        >>> result = run_pipeline(cfg)  # doctest: +SKIP
        >>> list(result.evals)  # doctest: +SKIP
        ['base', 'round_1']
    """
    run = Path(config.run_dir)
    check_run_dir(run, config)
    with torch_threads(config.threads), folder_lock(run):
        return _run(config, run)


def check_run_dir(run: Path, config: PipelineConfig) -> None:
    """Refuse a run folder whose recorded config differs from ``config`` (a resume must not mix settings)."""
    recorded = run / "config.json"
    if not recorded.exists():
        return
    old = {k: v for k, v in _flat(json.loads(recorded.read_text())).items() if k not in IGNORED_ON_RESUME}
    new = {k: v for k, v in _flat(to_dict(config)).items() if k not in IGNORED_ON_RESUME}
    changed = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    if changed:
        shown = "; ".join(f"{k}: {_short(old.get(k))} -> {_short(new.get(k))}" for k in changed[:4])
        raise ValueError(f"{run} holds a run with other settings ({shown}); re-run with the same flags to resume it, "
                         "or pass another --run-dir (delete the folder to start it over)")


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config dict with its nested configs' settings as ``sft.learning_rate`` keys (so a change names the setting)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and key in ("recipe", "sft", "swirl"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _run(config: PipelineConfig, run: Path) -> PipelineResult:
    from swirl_agents.pipeline.report import write_report

    run.mkdir(parents=True, exist_ok=True)
    if not (run / "config.json").exists():
        _write_json(run / "config.json", to_dict(config))
    _write_json(run / "versions.json", versions())
    stages = _Stages(config)
    _say(config, f"run folder {run}")
    policies = {"untouched": config.model} if config.model and config.warm_start_questions else {}
    policies["base"] = _base_policy(config, run, stages)
    for r in range(1, config.rounds + 1):
        previous = policies[f"round_{r - 1}" if r > 1 else "base"]
        policies[f"round_{r}"] = _round(config, run, r, previous, stages)
    evals = {name: _evaluate_policy(config, run, name, path, stages) for name, path in policies.items()}
    metrics = {"config": to_dict(config), "versions": versions(), "policies": policies, "evals": evals,
               "rounds": [_read_json(run / f"round_{r}" / "filter.json") for r in range(1, config.rounds + 1)],
               "timings": stages.timings, "cpu_seconds": stages.cpu_seconds, "skipped": stages.skipped}
    _write_json(run / "metrics.json", metrics)
    table = write_report(run, metrics)
    print(table, flush=True)
    return PipelineResult(run, policies, evals, stages.timings, stages.skipped, table)


# --- stages ----------------------------------------------------------------------------------------


@dataclass
class _Stages:
    """Runs each stage once and keeps its wall time and this process's CPU time (all its threads): a stage whose
    ``done`` marker exists is skipped, its times read from the marker (markers written before CPU time was kept
    have none)."""

    config: PipelineConfig
    timings: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def run(self, folder: Path, title: str) -> Iterator[bool]:
        """Yields True when ``folder/done`` exists (skip the body), else times the body and writes the marker."""
        marker = folder / "done"
        if marker.exists():
            recorded = json.loads(marker.read_text())
            self.timings[title] = recorded.get("seconds", 0.0)
            if "cpu_seconds" in recorded:
                self.cpu_seconds[title] = recorded["cpu_seconds"]
            self.skipped.append(title)
            _say(self.config, f"{title}: done already, skipped")
            yield True
            return
        _say(self.config, f"{title} ...")
        start, cpu_start = time.perf_counter(), time.process_time()
        yield False
        seconds = self.timings[title] = time.perf_counter() - start
        cpu = self.cpu_seconds[title] = time.process_time() - cpu_start
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"seconds": seconds, "cpu_seconds": cpu,
                                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        _say(self.config, f"{title}: {seconds:.1f} s ({cpu:.1f} CPU s)")


def _base_policy(config: PipelineConfig, run: Path, stages: _Stages) -> str:
    if not config.warm_start_questions:
        return config.model
    from swirl_agents.pipeline.recipe import build_base_policy

    title = "base policy (warm start of " + (config.model or "the tiny recipe") + ")"
    with stages.run(run / "base", title) as done:
        if not done:
            build_base_policy(run / "base", config)
    return str(run / "base" / "sft" / "final")


def _round(config: PipelineConfig, run: Path, r: int, policy: str, stages: _Stages) -> str:
    folder = run / f"round_{r}"
    final = folder / "train" / "final"
    with stages.run(folder / "generate", f"round {r}: generate") as done:
        if not done:
            generate_round(config, folder, policy, r)
    with stages.run(folder / "judge", f"round {r}: judge + filter") as done:
        if not done:
            judge_and_filter(config, run, folder)
    with stages.run(folder / "train", f"round {r}: train (SWiRL)") as done:
        if not done:
            _train_round(config, folder, policy)
    return str(final) if (final / "config.json").exists() else policy


def generate_round(config: PipelineConfig, folder: Path, policy: str, r: int) -> None:
    """Sample ``samples_per_question`` trajectories of ``policy`` on round ``r``'s train questions of every env."""
    from swirl_agents.agents.factory import make_agent
    from swirl_agents.rollout import generate_episodes

    seed = config.seed * 1000 + r
    agent = make_agent(policy, temperature=config.temperature, seed=seed, batch_size=config.batch_size,
                       max_new_tokens=config.max_new_tokens, device=config.device or None)
    for env_id in config.envs:
        env = train_env(config, env_id)
        summary = generate_episodes(env, agent, out=folder / "episodes.jsonl", question_ids=round_questions(config, env, r),
                                    samples_per_question=config.samples_per_question, batch_size=config.batch_size,
                                    seed=seed, progress=config.progress)
        _say(config, f"{env_id}: {summary.episodes_written} episodes, accuracy {summary.accuracy:.3f}, "
                     f"faults {summary.faults}")


def judge_and_filter(config: PipelineConfig, run: Path, folder: Path) -> None:
    """Judge every step of the round's episodes, keep them by ``config.strategy``; write what was kept and why."""
    from swirl_agents.filters import filter_transitions
    from swirl_agents.judges import judge_episodes, write_judgments

    episodes = list(read_episodes(folder / "episodes.jsonl"))
    judge = cached_judge(config, run, [train_env(config, e) for e in config.envs])
    judgments = judge_episodes(episodes, judge, progress=config.progress)
    write_judgments(folder / "judgments.jsonl", judgments)
    transitions, stats = filter_transitions(episodes, judgments, config.strategy)
    write_transitions(folder / "transitions.jsonl", transitions)
    per_env = {}
    for env_id in config.envs:
        mine = [ep for ep in episodes if ep.env_id == env_id]
        _, env_stats = filter_transitions(mine, {ep.episode_id: judgments[ep.episode_id] for ep in mine}, config.strategy)
        per_env[env_id] = {**dataclasses.asdict(env_stats),
                           "sample_accuracy": sum(ep.correct for ep in mine) / max(len(mine), 1)}
    _write_json(folder / "filter.json", {**dataclasses.asdict(stats), "per_env": per_env})
    _say(config, str(stats))


def _train_round(config: PipelineConfig, folder: Path, policy: str) -> None:
    """Train SWiRL on the round's kept transitions, starting from ``policy``; the new policy is ``train/final``."""
    from swirl_agents.episodes import read_transitions
    from swirl_agents.training import train

    transitions = read_transitions(folder / "transitions.jsonl")
    if not transitions:
        # Whatever the outcome: a round whose filter kept nothing leaves the policy as it was, and says so.
        _say(config, f"no transitions kept by strategy {config.strategy!r} (see {folder / 'filter.json'}): "
                     "this round does not train; sample more (--samples-per-question, --train-questions) or use --strategy none")
        return
    train(config.train_config("swirl", str(folder / "train"), policy), transitions)


def _evaluate_policy(config: PipelineConfig, run: Path, name: str, policy: str,
                     stages: _Stages) -> dict[str, dict[str, Any]]:
    from swirl_agents.agents.factory import make_agent
    from swirl_agents.evaluate import evaluate

    folder = run / "eval" / name
    with stages.run(folder, f"evaluate {name}") as done:
        if not done:
            agent = make_agent(policy, temperature=config.eval_temperature, seed=config.seed,
                               batch_size=config.batch_size, max_new_tokens=config.max_new_tokens,
                               device=config.device or None)
            results = {}
            for env_id in config.envs:
                split = eval_split(config, env_id)
                env = gym.make(env_id, split=split, **env_kwargs_for(env_id, config.env_kwargs))
                result = evaluate(env, agent, out=folder / f"{env_id}.jsonl", num_questions=config.eval_questions,
                                  judge=cached_judge(config, run, [env]), batch_size=config.batch_size,
                                  seed=config.seed, progress=config.progress)
                results[env_id] = result.to_dict()
                _say(config, f"{name} on {env_id}: accuracy {result.accuracy:.3f}, "
                             f"process label accuracy {result.process_label_accuracy:.3f}")
            _write_json(folder / "results.json", results)
    return _read_json(folder / "results.json")


# --- helpers -----------------------------------------------------------------------------------------


def train_env(config: PipelineConfig, env_id: str) -> gym.Env:
    """``env_id`` on the train split with the pipeline's env settings."""
    return gym.make(env_id, split=config.train_split, **env_kwargs_for(env_id, config.env_kwargs))


def eval_split(config: PipelineConfig, env_id: str) -> str:
    """The split ``env_id`` is evaluated on: ``config.eval_split``, else the env's held-out split.

    Example:
        >>> [eval_split(PipelineConfig(), e) for e in ("SwirlSynthQA-v0", "SwirlHotpot-v0", "SwirlGSM8K-v0")]
        ['test', 'dev', 'test']
    """
    from swirl_env.cards import eval_split as held_out

    return config.eval_split or held_out(env_id)


def round_questions(config: PipelineConfig, env: gym.Env, r: int) -> list[str]:
    """Round ``r``'s train questions: the ones after the warm start's questions when the split has enough, else from the start."""
    ids = [q.id for q in env.unwrapped.questions]
    n = min(config.train_questions, len(ids))
    start = config.warm_start_questions + (r - 1) * n
    if start + n > len(ids):
        start = ((r - 1) * n) % max(len(ids) - n + 1, 1)
    return ids[start : start + n]


def cached_judge(config: PipelineConfig, run: Path, envs: list[gym.Env]) -> Any:
    """The run's judge (``config.judge``) for the questions of ``envs``, behind the run's judgment cache."""
    from swirl_agents.judges import CachedJudge, EpisodeJudge, JudgmentCache, make_judge

    judge = make_judge(config.judge, envs=envs)
    return judge if isinstance(judge, EpisodeJudge) else CachedJudge(judge, JudgmentCache(run / "judgments.sqlite"))


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
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


def in_processes(fn: Callable[[Any], Any], items: Sequence[Any], jobs: int) -> list[Any]:
    """``[fn(item) for item in items]``, ``jobs`` at a time, each in a fresh process (here when ``jobs`` is 1).

    For independent runs such as seeds: ``fn`` must be a module-level function (or a ``functools.partial`` of one)
    and its results picklable. A failure in one run is raised here once the others have finished.
    """
    if jobs <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    with ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=context) as pool:
        return list(pool.map(fn, items))


def _say(config: PipelineConfig, message: str) -> None:
    if config.progress:
        print(f"[swirl.pipeline] {message}", file=sys.stderr, flush=True)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())
