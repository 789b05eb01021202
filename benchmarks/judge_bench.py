"""Step judges: do the reference judges find the reference agents' injected mistakes, and what does the cache save?

    python benchmarks/judge_bench.py                                # 500 questions per env, as reported
    python benchmarks/judge_bench.py --questions 50 --cache-episodes 10   # a quick look

Part "reference judges". For each env, the reference agent (``ReferenceQAAgent`` or
``ReferenceMathAgent``, ``mistake_rate`` 0.25) plays one episode per question through
``generate_episodes``, annotating every step it spoiled on purpose in ``Step.meta["mistake"]``.
The matching reference judge labels every step. Ground truth: a step is BAD iff the agent annotated
a mistake. Consequence steps count as GOOD: a maths step marked ``tainted`` (it follows the
procedure with a wrong value an earlier mistake produced) is the right action in its context,
which is what a process judge grades, and SWiRL's step reward R(a|s) is a judgment of the step
given s; the earlier step is the BAD one. Honest retries (``intent: retry_search``, a search for a
supporting article the first query missed) and answers at the step limit without every article
(``grounded: False``) are not mistakes either. The report gives precision and recall of BAD, the
confusion matrix, recall per mistake kind, the share judged BAD per kind of correct step, and the
same numbers with tainted steps counted as BAD, for readers who prefer that convention.

Part "cache". The LLM judge on a tiny random transformers model judges every step of an episode
file through a ``CachedJudge`` (SQLite), then a second run, with a fresh cache object on the same
file, judges the same file again: the second run must make zero model calls.

Writes ``benchmarks/results/judges.json`` and ``judges.md`` (with the command behind the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import gymnasium as gym

import swirl_agents
import swirl_env
from swirl_agents.agents.hf import TransformersAgent
from swirl_agents.agents.reference.math import ReferenceMathAgent
from swirl_agents.agents.reference.qa import ReferenceQAAgent
from swirl_agents.episodes import read_episodes
from swirl_agents.judges import (
    BAD, GOOD, UNPARSEABLE, CachedJudge, JudgmentCache, LLMJudge, ReferenceMathJudge, ReferenceQAJudge, judge_episodes,
)
from swirl_agents.tiny import make_tiny_policy
from swirl_agents.rollout import generate_episodes

RESULTS = Path(__file__).resolve().parent / "results"
MATH_ENVS = ("SwirlGSM8K-v0", "SwirlSynthMath-v0")
REAL_ENVS = ("SwirlHotpot-v0", "SwirlGSM8K-v0")


@dataclass
class BenchConfig:
    """Settings of the judge benchmark."""

    envs: str = "SwirlHotpot-v0,SwirlGSM8K-v0,SwirlSynthQA-v0,SwirlSynthMath-v0"
    """Comma-separated env ids whose reference-agent episodes are judged."""
    questions: int = 500
    """Questions per env (the env's first ones), one episode each."""
    mistake_rate: float = 0.25
    """Per-step probability that the reference agent injects a mistake."""
    seed: int = 0
    """Rollout seed (the agents' mistakes and wording follow from it)."""
    examples: int = 8
    """Disagreements between judge and annotation listed per env."""
    cache_env: str = "SwirlGSM8K-v0"
    """Env whose episodes the LLM judge labels in the cache part."""
    cache_episodes: int = 30
    """Episodes judged by the LLM judge (every step) in the cache part."""
    max_new_tokens: int = 32
    """Length of the tiny LLM judge's reply."""
    threads: int = 0
    """torch threads (0: torch's default)."""


# --- reference judges against annotated mistakes ------------------------------------------------


def step_kind(meta: dict) -> str:
    """The mistake a step carries, else what kind of correct step it is."""
    if meta.get("mistake"):
        return meta["mistake"]
    if meta.get("tainted"):
        return "tainted (carries an earlier wrong value)"
    if meta.get("intent") == "answer" and meta.get("grounded") is False:
        return "answer at the step limit, article missing"
    return meta.get("intent") or "unannotated"


def confusion(rows: list[tuple[str, bool, str]]) -> dict:
    """Precision, recall and the confusion matrix of BAD, from ``(kind, truly bad, label)`` rows."""
    tp = sum(bad and label == BAD for _, bad, label in rows)
    fp = sum(not bad and label == BAD for _, bad, label in rows)
    fn = sum(bad and label != BAD for _, bad, label in rows)
    tn = len(rows) - tp - fp - fn
    return {"steps": len(rows), "bad_steps": tp + fn,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
            "accuracy": round((tp + tn) / len(rows), 4) if rows else None,
            "confusion": {"bad_judged_bad": tp, "bad_judged_good": fn, "good_judged_bad": fp, "good_judged_good": tn}}


def by_kind(rows: list[tuple[str, bool, str]]) -> dict:
    """Per kind of step: how many, and the share the judge labelled BAD (recall for mistakes)."""
    counts, bad = Counter(), Counter()
    for kind, _, label in rows:
        counts[kind] += 1
        bad[kind] += label == BAD
    return {k: {"steps": n, "judged_bad": round(bad[k] / n, 4)} for k, n in sorted(counts.items())}


def run_reference(env_id: str, cfg: BenchConfig, folder: Path) -> tuple[dict, list[tuple[str, bool, str]]]:
    env = gym.make(env_id)
    questions = env.unwrapped.questions
    math = env_id in MATH_ENVS
    agent = (ReferenceMathAgent if math else ReferenceQAAgent)(questions, mistake_rate=cfg.mistake_rate)
    judge = (ReferenceMathJudge if math else ReferenceQAJudge)(questions)
    path = folder / f"{env_id}.jsonl"
    summary = generate_episodes(env, agent, out=path, num_questions=cfg.questions, seed=cfg.seed, progress=False)
    episodes = list(read_episodes(path))
    start = time.perf_counter()
    judgments = judge_episodes(episodes, judge)
    seconds = time.perf_counter() - start
    rows, tainted_rows, disagreements = [], [], []
    for ep in episodes:
        for i, (step, j) in enumerate(zip(ep.steps, judgments[ep.episode_id])):
            kind, bad = step_kind(step.meta), bool(step.meta.get("mistake"))
            rows.append((kind, bad, j.label))
            tainted_rows.append((kind, bad or bool(step.meta.get("tainted")), j.label))
            if bad != (j.label == BAD) and len(disagreements) < cfg.examples:
                disagreements.append({"episode": ep.episode_id, "step": i, "kind": kind, "label": j.label,
                                      "action": step.action[-200:], "rationale": j.rationale})
    report = {"env": env_id, "episodes": len(episodes), "rollout_accuracy": round(summary.accuracy, 4),
              "judge": f"{judge.id} v{judge.version}", "judge_steps_per_s": round(len(rows) / seconds, 1),
              **confusion(rows), "per_kind": by_kind(rows), "disagreements": disagreements}
    if math:
        report["tainted_counted_bad"] = confusion(tainted_rows)
    return report, rows


# --- the cache ----------------------------------------------------------------------------------


class CountingGenerator:
    """Wraps a backend and counts the prompts sent to the model."""

    def __init__(self, inner: TransformersAgent):
        self.inner, self.name, self.prompts = inner, inner.name, 0

    def generate(self, prompts, **kw):
        self.prompts += len(prompts)
        return self.inner.generate(prompts, **kw)


def run_cache(cfg: BenchConfig, folder: Path) -> dict:
    env = gym.make(cfg.cache_env)
    questions = env.unwrapped.questions
    path = folder / "cache_episodes.jsonl"
    generate_episodes(env, ReferenceMathAgent(questions, mistake_rate=cfg.mistake_rate) if cfg.cache_env in MATH_ENVS
                      else ReferenceQAAgent(questions, mistake_rate=cfg.mistake_rate),
                      out=path, num_questions=cfg.cache_episodes, seed=cfg.seed, progress=False)
    texts = [s for ep in read_episodes(path) for s in ep.states()][:400]
    model_dir = make_tiny_policy(folder / "tiny", texts, vocab_size=1024, n_layer=2, n_embd=64, n_head=4, seed=0)
    backend = CountingGenerator(TransformersAgent(model_dir, do_sample=False))
    backend.generate(["Warm up."], max_new_tokens=2)
    db, runs = folder / "judgments.sqlite", []
    for run in ("first (model calls)", "second (cache only)"):
        cache = JudgmentCache(db)
        judge = CachedJudge(LLMJudge(backend, max_new_tokens=cfg.max_new_tokens), cache)
        before, start = backend.prompts, time.perf_counter()
        judgments = judge_episodes(list(read_episodes(path)), judge)  # re-read: a second run starts from the file
        seconds = time.perf_counter() - start
        labels = Counter(j.label for js in judgments.values() for j in js)
        runs.append({"run": run, "seconds": round(seconds, 4), "model_calls": backend.prompts - before,
                     "cache_hits": judge.hits, "cache_misses": judge.misses,
                     "labels": {k: labels.get(k, 0) for k in (GOOD, BAD, UNPARSEABLE)}})
        cache.close()
    return {"env": cfg.cache_env, "episodes": cfg.cache_episodes, "steps": runs[0]["cache_misses"],
            "judge_version": LLMJudge(backend).version, "max_new_tokens": cfg.max_new_tokens, "runs": runs,
            "speedup": round(runs[0]["seconds"] / max(runs[1]["seconds"], 1e-9), 1)}


# --- report -------------------------------------------------------------------------------------


def provenance(cfg: BenchConfig) -> dict:
    import torch
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    return {"command": "python benchmarks/judge_bench.py " + " ".join(sys.argv[1:]), "config": asdict(cfg),
            "git_commit": commit,
            "versions": {"swirl_env": swirl_env.__version__, "swirl_agents": swirl_agents.__version__,
                         "torch": torch.__version__, "transformers": transformers.__version__,
                         "python": platform.python_version()},
            "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform()}}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def write_markdown(report: dict, path: Path) -> None:
    cfg = report["config"]
    lines = ["# Judge benchmarks", "",
             f"`{report['command'].strip()}` (commit `{report['git_commit'][:10] or 'unknown'}`, "
             f"{report['machine']['cpus']} CPUs)", "",
             "## Reference judges against injected mistakes", "",
             f"Reference agents, mistake rate {cfg['mistake_rate']}, one episode per question, "
             f"{cfg['questions']} questions per env. Ground truth: BAD iff the agent annotated a mistake; "
             "tainted maths steps (correct procedure, earlier wrong value), honest search retries and answers "
             "at the step limit count as GOOD (see the module docstring for why).", "",
             "| env | episodes | steps | BAD steps | precision | recall | accuracy | BAD→BAD | BAD→GOOD | GOOD→BAD | GOOD→GOOD |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in [*report["reference"], *([report["real_pooled"]] if report.get("real_pooled") else [])]:
        c = r["confusion"]
        lines.append(f"| {r['env']} | {r.get('episodes', '')} | {r['steps']} | {r['bad_steps']} | {_pct(r['precision'])} | "
                     f"{_pct(r['recall'])} | {_pct(r['accuracy'])} | {c['bad_judged_bad']} | {c['bad_judged_good']} | "
                     f"{c['good_judged_bad']} | {c['good_judged_good']} |")
    lines += ["", "Share judged BAD per kind of step (for mistakes: recall of that kind):", "",
              "| env | kind of step | steps | judged BAD |", "|---|---|---|---|"]
    for r in report["reference"]:
        lines += [f"| {r['env']} | {k} | {v['steps']} | {v['judged_bad']:.3f} |" for k, v in r["per_kind"].items()]
    lines += ["", "With tainted steps counted as BAD instead (maths envs):", ""]
    lines += [f"- {r['env']}: precision {_pct(r['tainted_counted_bad']['precision'])}, recall "
              f"{_pct(r['tainted_counted_bad']['recall'])}" for r in report["reference"] if "tainted_counted_bad" in r]
    c = report.get("cache")
    if c:
        lines += ["", "## Judgment cache (LLM judge, tiny random transformers model)", "",
                  f"{c['steps']} steps of {c['episodes']} `{c['env']}` episodes, max {c['max_new_tokens']} new tokens, "
                  f"judge version `{c['judge_version']}`.", "",
                  "| run | seconds | model calls | cache hits | GOOD / BAD / UNPARSEABLE |", "|---|---|---|---|---|"]
        lines += [f"| {r['run']} | {r['seconds']:.3f} | {r['model_calls']} | {r['cache_hits']} | "
                  f"{r['labels']['GOOD']} / {r['labels']['BAD']} / {r['labels']['UNPARSEABLE']} |" for r in c["runs"]]
        lines += ["", f"Second run {c['speedup']}x faster than the first. A random model writes no verdict: "
                  "its replies are recorded as UNPARSEABLE, never guessed.", ""]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(BenchConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    cfg = BenchConfig(**vars(parser.parse_args(argv)))
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    reference, real_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for env_id in cfg.envs.split(","):
            start = time.perf_counter()
            report, rows = run_reference(env_id, cfg, folder)
            reference.append(report)
            if env_id in REAL_ENVS:
                real_rows += rows
            print(f"{env_id}: precision {report['precision']} recall {report['recall']} "
                  f"({time.perf_counter() - start:.1f}s)", flush=True)
        cache = run_cache(cfg, folder) if cfg.cache_episodes > 0 else None
    if cache:
        print(f"cache: {json.dumps(cache['runs'])} speedup {cache['speedup']}x", flush=True)
    pooled = {"env": " + ".join(e for e in REAL_ENVS if e in cfg.envs.split(",")) + " (pooled)",
              **confusion(real_rows)} if real_rows else None
    report = {**provenance(cfg), "reference": reference, "real_pooled": pooled, "cache": cache}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "judges.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_markdown(report, RESULTS / "judges.md")
    return report


if __name__ == "__main__":
    main()
