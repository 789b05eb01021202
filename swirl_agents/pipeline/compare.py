"""The paper's comparisons in one call: every arm from one base policy and one set of judged trajectories per seed.

SWiRL's claims are comparisons. For each seed, :func:`run_comparison` makes the base policy (the
pipeline's warm start), samples trajectories from it once, judges every step once, and then trains and
evaluates each arm from the same base on the same data; the arms differ only in which steps they keep
and in their objective:

========================  ======================================================================
arm                       what it trains on
========================  ======================================================================
``base``                  nothing: the warm-started policy
``sft``                   SFT on every sampled trajectory, every step weight 1 (the baseline that hurts)
``trajectory_rl``         trajectory-level RL: every step gets its episode's outcome, mean-baselined
``swirl_none``            step-wise RL, every trajectory, each step rewarded by the judge
``swirl_outcome``         ... trajectories whose final answer is right
``swirl_process``         ... trajectories whose every step the judge calls GOOD (the paper's best)
``swirl_process_outcome`` ... both
``swirl_process_wrong``   ... process-filtered trajectories whose final answer is wrong
``qa_only``, ``math_only`` ``swirl_process`` on one task's trajectories, evaluated on every env (cross-task)
``process_25``, ``process_50`` ``swirl_process`` on the first 25% / 50% of its kept episodes (data scaling)
``round_2``               a second round: trajectories from ``swirl_process``, judged, filtered, trained further
========================  ======================================================================

With ``--model`` the untouched model is evaluated too (``untouched``). Every arm is evaluated greedily on
each env's held-out split with the same reference judge (process label accuracy). For cross-task arms both
envs offer both tools (``--pipeline.env-kwargs`` sets ``tools``; :func:`cross_task_kwargs` is the default
the comparison uses), so a QA-trained policy meets the calculator it never used in training, as in the paper.

A run folder holds one folder per seed (``seed_0/``: the pipeline's ``base/``, ``data/`` with the shared
episodes and judgments, ``arms/<arm>/`` with the trainer's output, ``eval/<arm>/``); every stage resumes.
"""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swirl_agents.pipeline.config import PipelineConfig

ARMS = ("base", "sft", "trajectory_rl", "swirl_none", "swirl_outcome", "swirl_process", "swirl_process_outcome",
        "swirl_process_wrong", "qa_only", "math_only", "process_25", "process_50", "round_2")
"""Every arm, in report order (``untouched`` is added first when a real model is given)."""

STRATEGY = {"sft": "none", "trajectory_rl": "none", "swirl_none": "none", "swirl_outcome": "outcome",
            "swirl_process": "process", "swirl_process_outcome": "process+outcome", "swirl_process_wrong": "process",
            "qa_only": "process", "math_only": "process", "process_25": "process", "process_50": "process"}
"""The data strategy each trained arm keeps its transitions by."""


@dataclass
class CompareConfig:
    """The paper's comparison matrix: the base policy against SFT, trajectory-level RL and SWiRL's data strategies."""

    run_dir: str = "runs/compare"
    """Folder of the comparison (one sub-folder per seed); re-running resumes it."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds; each gets its own base policy, samples, training and evaluation."""
    arms: tuple[str, ...] = ARMS
    """Arms to run (see ``swirl_agents.pipeline.compare``); cross-task arms need envs of both tasks."""
    jobs: int = 1
    """Seeds run at once, each in its own process. Seeds are independent, so on 2 cores ``--jobs 2 --threads 1``
    runs three seeds in about the time of two; with ``threads`` 0 each process gets an equal share of the cores."""
    cross_task_tools: bool = True
    """Give every env both tools (search and calculator) so that a policy trained on one task can act in the other."""
    pipeline: PipelineConfig = field(default_factory=PipelineConfig,
                                     metadata={"flatten": True, "hide": ("seed", "rounds")})
    """Everything else, as in ``swirl pipeline`` (base policy, sampling, judge, trainers, evaluation); its ``rounds``
    is not a setting here (every arm trains once from the base policy; the ``round_2`` arm is the second round)."""

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ValueError(f"CompareConfig.arms: expected arms from {ARMS}, actual {unknown}")
        if not self.seeds:
            raise ValueError("CompareConfig.seeds: expected at least one seed, actual none")
        if self.jobs < 1:
            raise ValueError(f"CompareConfig.jobs: expected at least 1, actual {self.jobs}")
        self.arms, self.seeds = tuple(self.arms), tuple(self.seeds)

    def for_seed(self, seed: int) -> PipelineConfig:
        """The pipeline config of one seed: its own folder and seed, both tools everywhere for cross-task arms."""
        env_kwargs = dict(self.pipeline.env_kwargs)
        if self.cross_task_tools:
            env_kwargs = {e: {**cross_task_kwargs(e), **env_kwargs.get(e, {})} for e in self.pipeline.envs}
        return dataclasses.replace(self.pipeline, seed=seed, run_dir=str(Path(self.run_dir) / f"seed_{seed}"),
                                   env_kwargs=env_kwargs, rounds=1)


def cross_task_kwargs(env_id: str) -> dict[str, Any]:
    """Both tools for ``env_id``, in the order that puts its own task's tool first."""
    return {"tools": ("calculator", "search") if _task(env_id) == "math" else ("search", "calculator")}


def run_comparison(config: CompareConfig) -> dict[str, Any]:
    """Run (or resume) every arm for every seed; write ``results.json`` and ``report.md``; return the results."""
    import functools

    from swirl_agents.pipeline.stages import in_processes

    root = Path(config.run_dir)
    seeds = list(config.seeds)
    runs = dict(zip(seeds, in_processes(functools.partial(_seed_job, config), seeds, config.jobs)))
    results = summarize(runs, config)
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(results, indent=2))
    (root / "report.md").write_text(markdown(results))
    return results


# --- one seed ------------------------------------------------------------------------------------------


def _seed_job(config: CompareConfig, seed: int) -> dict[str, Any]:
    """Run (or resume) one seed under its folder's lock, with its share of the CPU threads."""
    import os

    from swirl_agents.jsonl import folder_lock
    from swirl_agents.pipeline.stages import check_run_dir, torch_threads

    threads = config.pipeline.threads
    if not threads and config.jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // config.jobs)
    pipeline = config.for_seed(seed)
    check_run_dir(Path(pipeline.run_dir), pipeline)
    with torch_threads(threads), folder_lock(pipeline.run_dir):
        return _run_seed(config, pipeline)


def _run_seed(config: CompareConfig, p: PipelineConfig) -> dict[str, Any]:
    from swirl_agents.configs import to_dict
    from swirl_agents.pipeline.stages import _base_policy, _Stages, _write_json, generate_round, judge_and_filter

    run = Path(p.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "config.json").exists():
        _write_json(run / "config.json", to_dict(p))
    stages = _Stages(p)
    policies = {"untouched": p.model} if p.model and p.warm_start_questions else {}
    policies["base"] = _base_policy(p, run, stages)
    data = run / "data"
    with stages.run(data / "generate", "generate (shared by every arm)") as done:
        if not done:
            generate_round(p, data, policies["base"], 1)
    with stages.run(data / "judge", "judge (shared by every arm)") as done:
        if not done:
            judge_and_filter(dataclasses.replace(p, strategy="none"), run, data)
    kept = kept_counts(data)
    for arm in config.arms:
        if arm in ("base", "round_2") or not _applies(arm, p):
            continue
        policies[arm] = _train_arm(p, run, arm, policies["base"], stages)
    if "round_2" in config.arms and "swirl_process" in policies:
        policies["round_2"] = _second_round(p, run, policies["swirl_process"], stages)
    evals, same = {}, {}
    for arm, path in policies.items():
        first = next((a for a in evals if policies[a] == path), None) if not p.eval_temperature else None
        if first is None:
            evals[arm] = _evaluate(p, run, arm, path, stages)
        else:  # kept no data, so trained nothing: the same weights, and greedy evaluation gives the same numbers
            evals[arm], same[arm] = evals[first], first
    return {"seed": p.seed, "policies": policies, "evals": evals, "kept": kept, "timings": stages.timings,
            "same_policy": same}


def _applies(arm: str, p: PipelineConfig) -> bool:
    """Cross-task arms need an env of the other task to be evaluated on."""
    if arm not in ("qa_only", "math_only"):
        return True
    tasks = {_task(e) for e in p.envs}
    return tasks == {"qa", "math"}


def _task(env_id: str) -> str:
    """The task an env id declares (its card), without building the env."""
    from swirl_env.cards import card

    return card(env_id).task


def arm_transitions(arm: str, episodes: list, judgments: dict, seed: int) -> list:
    """The transitions an arm trains on, from the shared episodes and judgments."""
    from swirl_agents.filters import filter_transitions

    if arm in ("qa_only", "math_only"):
        episodes = [ep for ep in episodes if _task(ep.env_id) == arm.removesuffix("_only")]
    transitions, _ = filter_transitions(episodes, judgments, STRATEGY[arm])
    if arm == "swirl_process_wrong":
        transitions = [t for t in transitions if not t.episode.correct]
    if arm in ("process_25", "process_50"):
        ids = sorted({t.episode_id for t in transitions})
        random.Random(seed).shuffle(ids)
        keep = set(ids[: round(len(ids) * int(arm.split("_")[1]) / 100)])
        transitions = [t for t in transitions if t.episode_id in keep]
    return transitions


def _train_arm(p: PipelineConfig, run: Path, arm: str, base: str, stages: Any) -> str:
    from swirl_agents.episodes import read_episodes
    from swirl_agents.judges import read_judgments
    from swirl_agents.training import train

    folder = run / "arms" / arm
    with stages.run(folder / "trained", f"train {arm}") as done:
        if not done:
            data = run / "data"
            transitions = arm_transitions(arm, list(read_episodes(data / "episodes.jsonl")),
                                          read_judgments(data / "judgments.jsonl"), p.seed)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "data.json").write_text(json.dumps({"transitions": len(transitions),
                                                          "episodes": len({t.episode_id for t in transitions})}))
            if transitions:
                train(_arm_train_config(p, arm, folder, base), transitions)
    final = folder / "train" / "final"
    return str(final) if (final / "config.json").exists() else base


def _arm_train_config(p: PipelineConfig, arm: str, folder: Path, base: str) -> Any:
    config = p.train_config("swirl", str(folder / "train"), base)
    if arm == "sft":
        return dataclasses.replace(config, objective="sft", baseline="none")
    if arm == "trajectory_rl":
        return dataclasses.replace(config, objective="trajectory", baseline="mean")
    return config


def _second_round(p: PipelineConfig, run: Path, policy: str, stages: Any) -> str:
    from swirl_agents.pipeline.stages import _round

    return _round(dataclasses.replace(p, strategy="process"), run, 2, policy, stages)


def _evaluate(p: PipelineConfig, run: Path, arm: str, policy: str, stages: Any) -> dict[str, Any]:
    from swirl_agents.pipeline.stages import _evaluate_policy

    return _evaluate_policy(p, run, arm, policy, stages)


def kept_counts(data: Path) -> dict[str, dict[str, int]]:
    """Per strategy: episodes and transitions kept from the shared data, and kept episodes with a wrong answer."""
    from swirl_agents.episodes import read_episodes
    from swirl_agents.filters import STRATEGIES, filter_transitions
    from swirl_agents.judges import read_judgments

    episodes = list(read_episodes(data / "episodes.jsonl"))
    judgments = read_judgments(data / "judgments.jsonl")
    out = {}
    for strategy in STRATEGIES:
        transitions, stats = filter_transitions(episodes, judgments, strategy)
        wrong = {t.episode_id for t in transitions if not t.episode.correct}
        out[strategy] = {"episodes": stats.episodes_kept, "transitions": stats.transitions_kept,
                         "wrong_answer_episodes": len(wrong), "of_episodes": stats.episodes}
    return out


# --- summary and report ------------------------------------------------------------------------------------

METRICS = ("accuracy", "f1", "process_label_accuracy", "malformed_rate", "mean_steps")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: dict[int, dict[str, Any]], config: CompareConfig) -> dict[str, Any]:
    """Per arm and env: mean ± std over seeds of every metric, the per-seed difference to ``base`` and seeds improved."""
    seeds = sorted(runs)
    arms = [a for a in ("untouched", *ARMS) if all(a in runs[s]["evals"] for s in seeds)]
    envs = list(runs[seeds[0]]["evals"]["base"])
    table: dict[str, Any] = {}
    for arm in arms:
        table[arm] = {}
        for env in envs:
            row = {}
            for metric in METRICS:
                values = [runs[s]["evals"][arm][env][metric] for s in seeds]
                diffs = [v - runs[s]["evals"]["base"][env][metric] for v, s in zip(values, seeds)]
                better = (lambda d: d < 0) if metric == "malformed_rate" else (lambda d: d > 0)
                row[metric] = {"mean_std": mean_std(values), "per_seed": values, "vs_base": mean_std(diffs),
                               "seeds_improved": sum(better(d) for d in diffs)}
            table[arm][env] = row
    return {"config": json.loads(json.dumps(dataclasses.asdict(config), default=str)), "seeds": seeds, "envs": envs,
            "arms": arms, "table": table, "kept": {s: runs[s]["kept"] for s in seeds},
            "timings": {s: runs[s]["timings"] for s in seeds}, "findings": findings(table, envs, runs),
            "same_policy": {s: runs[s].get("same_policy", {}) for s in seeds},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _acc(table: dict, arm: str, env: str) -> tuple[float, float, int]:
    cell = table.get(arm, {}).get(env, {}).get("accuracy")
    return (cell["vs_base"][0], cell["vs_base"][1], cell["seeds_improved"]) if cell else (float("nan"), 0.0, 0)


def held_on(seeds_held: int, seeds: int) -> str:
    """Whether a claim holds on every seed, on most, or not.

    Example:
        >>> held_on(3, 3), held_on(2, 3), held_on(1, 2)
        ('reproduces', 'partly reproduces', 'does not reproduce')
    """
    if 2 * seeds_held <= seeds:
        return "does not reproduce"
    return "reproduces" if seeds_held == seeds else "partly reproduces"


def verdict(diff: float, improved: int, seeds: int) -> str:
    """Whether a claimed lift reproduces: :func:`held_on` its seeds, and never with a mean at or below zero.

    Example:
        >>> verdict(0.1, 3, 3), verdict(0.02, 2, 3), verdict(-0.01, 1, 3), verdict(0.01, 1, 3)
        ('reproduces', 'partly reproduces', 'does not reproduce', 'does not reproduce')
    """
    return "does not reproduce" if diff != diff or diff <= 0 else held_on(improved, seeds)


def findings(table: dict, envs: list[str], runs: dict) -> list[str]:
    """One sentence per finding of the paper: whether it reproduces here, and how strongly (measured, not assumed)."""
    n = len(runs)
    out = []

    def each(arm: str, verb: str) -> str:
        parts = []
        for env in envs:
            d, sd, k = _acc(table, arm, env)
            if d == d:  # not NaN
                parts.append(f"{env} {d:+.3f} ± {sd:.3f} ({k}/{n} seeds: {verdict(d, k, n)})")
        return f"{verb}: " + ("; ".join(parts) if parts else "arm not run")

    out.append("(a) SWiRL (process filter) vs the base policy, accuracy difference per seed — "
               + each("swirl_process", "measured"))
    lines = []
    for env in envs:
        p, o = table.get("swirl_process", {}).get(env), table.get("swirl_outcome", {}).get(env)
        if p and o:
            diffs = [a - b for a, b in zip(p["accuracy"]["per_seed"], o["accuracy"]["per_seed"])]
            held = sum(d >= 0 for d in diffs)
            told = ("equal on every seed: nothing here tells them apart" if all(d == 0 for d in diffs)
                    else f"process ≥ outcome on {held}/{n} seeds: {held_on(held, n)}")
            lines.append(f"{env} process {p['accuracy']['mean_std'][0]:.3f} vs outcome {o['accuracy']['mean_std'][0]:.3f} "
                         f"({told})")
    wrong = [r["kept"].get("process", {}).get("wrong_answer_episodes") for r in runs.values()]
    if "swirl_process_wrong" in table and all(w == 0 for w in wrong):
        wrong_line = ("process-filtered episodes with wrong answers cannot be tested here: the judge called every wrong "
                      "final answer BAD, so the process filter kept none (an LLM judge can keep them)")
    else:
        wrong_line = "process-filtered episodes with wrong answers alone — " + each("swirl_process_wrong", "vs base")
    out.append("(b) process filter ≥ outcome filter: " + ("; ".join(lines) or "arms not run") + "; " + wrong_line)
    lines = []
    for env in envs:
        s, f = table.get("sft", {}).get(env), table.get("swirl_process", {}).get(env)
        if s and f:
            held = sum(a < b for a, b in zip(s["accuracy"]["per_seed"], f["accuracy"]["per_seed"]))
            lines.append(f"{env} SFT {s['accuracy']['mean_std'][0]:.3f} vs SWiRL {f['accuracy']['mean_std'][0]:.3f} "
                         f"(SFT below SWiRL on {held}/{n} seeds: {held_on(held, n)})")
    out.append("(c) SFT on the same trajectories does worse than SWiRL: " + ("; ".join(lines) or "arms not run"))
    math_envs = [e for e in envs if _task(e) == "math"]
    qa_envs = [e for e in envs if _task(e) == "qa"]
    cross = [f"{e} {_acc(table, 'qa_only', e)[0]:+.3f} ± {_acc(table, 'qa_only', e)[1]:.3f} "
             f"({_acc(table, 'qa_only', e)[2]}/{n} seeds: {verdict(_acc(table, 'qa_only', e)[0], _acc(table, 'qa_only', e)[2], n)})"
             for e in math_envs if "qa_only" in table]
    cross += [f"(reverse: math-only on {e} {_acc(table, 'math_only', e)[0]:+.3f})" for e in qa_envs if "math_only" in table]
    out.append("(d) training on QA alone lifts maths (the paper: +16.9% relative on GSM8K): "
               + (", ".join(cross) or "needs a QA and a maths env"))
    lines = []
    for env in envs:
        cell = table.get("swirl_process", {}).get(env, {}).get("process_label_accuracy")
        if cell:
            lines.append(f"{env} {cell['vs_base'][0]:+.3f} ± {cell['vs_base'][1]:.3f} ({cell['seeds_improved']}/{n} seeds: "
                         f"{verdict(cell['vs_base'][0], cell['seeds_improved'], n)})")
    out.append("(e) process label accuracy rises with SWiRL (process filter): " + ("; ".join(lines) or "arm not run"))
    return out


def markdown(results: dict[str, Any]) -> str:
    """The report: one table per env (every arm, mean ± std over seeds, difference to base), kept data, findings."""
    seeds, envs = results["seeds"], results["envs"]
    lines = [f"Seeds: {', '.join(map(str, seeds))}. Mean ± std over seeds; the difference to `base` is taken per seed; "
             "\"improved\" counts seeds where the arm beat the base (lower is better for malformed steps).", ""]
    for env in envs:
        lines += [f"### {env}", "", "| arm | accuracy | vs base (improved) | F1 | process label acc. | vs base (improved) "
                  "| malformed | mean steps |", "|---|---|---|---|---|---|---|---|"]
        for arm in results["arms"]:
            r = results["table"][arm][env]
            fmt = lambda m: f"{r[m]['mean_std'][0]:.3f} ± {r[m]['mean_std'][1]:.3f}"  # noqa: E731
            vs = lambda m: (f"{r[m]['vs_base'][0]:+.3f} ± {r[m]['vs_base'][1]:.3f} ({r[m]['seeds_improved']}/{len(seeds)})"  # noqa: E731
                            if arm != "base" else "")
            lines.append(f"| {arm} | {fmt('accuracy')} | {vs('accuracy')} | {fmt('f1')} | {fmt('process_label_accuracy')} "
                         f"| {vs('process_label_accuracy')} | {fmt('malformed_rate')} | {r['mean_steps']['mean_std'][0]:.2f} |")
        lines.append("")
    lines += ["### Kept data per strategy (episodes / transitions; episodes with a wrong final answer)", "",
              "| seed | " + " | ".join(results["kept"][seeds[0]]) + " |", "|---|" + "---|" * len(results["kept"][seeds[0]])]
    for s in seeds:
        k = results["kept"][s]
        lines.append(f"| {s} | " + " | ".join(f"{v['episodes']}/{v['of_episodes']} eps, {v['transitions']} steps; "
                                               f"{v['wrong_answer_episodes']} wrong" for v in k.values()) + " |")
    same = [f"{arm} on seed {s} (= {first})" for s, arms in results.get("same_policy", {}).items()
            for arm, first in arms.items()]
    if same:
        lines += ["", "Arms whose strategy kept no data train nothing: their policy is the one named, and its greedy "
                  "evaluation is reused: " + ", ".join(same) + "."]
    lines += ["", "### The paper's findings, here", ""] + [f"- {f}" for f in results["findings"]]
    return "\n".join(lines) + "\n"
