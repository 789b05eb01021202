"""The main job, repeated: ``swirl pipeline`` with its default settings over several seeds.

    python benchmarks/pipeline_bench.py                    # seeds 0 1 2, default PipelineConfig
    python benchmarks/pipeline_bench.py --seeds 0 1 2 3 4 --threads 2

Each seed is one full run (its own tiny base policy, sampled data, SWiRL round and evaluation on
the same held-out test questions) in ``benchmarks/results/tmp/pipeline/seed_<k>``. Reports, per env,
mean ± standard deviation over seeds of the base and SWiRL policies' accuracy and process label
accuracy, and of the per-seed difference, whatever the outcome, plus each stage's wall time.
Writes ``benchmarks/results/pipeline.json`` and ``pipeline.md`` with the command behind the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from swirl_agents.pipeline import PipelineConfig, run_pipeline
from swirl_agents.runinfo import versions

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("accuracy", "process_label_accuracy", "answered", "malformed_rate")
LOWER_IS_BETTER = {"malformed_rate"}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[dict]) -> dict:
    """Per env and metric: mean ± std of base, last round and their per-seed difference; per stage: mean seconds."""
    last = [list(r["evals"])[-1] for r in runs]
    envs = list(runs[0]["evals"]["base"])
    out: dict = {"envs": {}, "timings": {}}
    for env in envs:
        out["envs"][env] = {}
        for metric in METRICS:
            base = [r["evals"]["base"][env][metric] for r in runs]
            after = [r["evals"][name][env][metric] for r, name in zip(runs, last)]
            diff = [a - b for a, b in zip(after, base)]
            out["envs"][env][metric] = {"base": mean_std(base), "swirl": mean_std(after), "difference": mean_std(diff),
                                        "improved_seeds": sum((d < 0) if metric in LOWER_IS_BETTER else (d > 0)
                                                              for d in diff)}
    for stage in runs[0]["timings"]:
        out["timings"][stage] = mean_std([r["timings"].get(stage, 0.0) for r in runs])
    out["total_seconds"] = mean_std([sum(r["timings"].values()) for r in runs])
    return out


def markdown(summary: dict, runs: list[dict], command: str) -> str:
    """The results page: the command, the mean ± std table, per-seed rows and stage timings."""
    fmt = lambda ms: f"{ms[0]:.3f} ± {ms[1]:.3f}"  # noqa: E731
    lines = ["# Pipeline benchmark: the main job over seeds", "", f"Command: `{command}`", "",
             f"Seeds: {', '.join(str(r['config']['seed']) for r in runs)}; "
             f"machine: {platform.machine()}, {os.cpu_count()} CPUs; torch threads: {runs[0]['config']['threads'] or 'default'}.",
             "", "| env | metric | base | SWiRL | difference | seeds improved |", "|---|---|---|---|---|---|"]
    for env, per_metric in summary["envs"].items():
        for metric, s in per_metric.items():
            lines.append(f"| {env} | {metric} | {fmt(s['base'])} | {fmt(s['swirl'])} | {fmt(s['difference'])} | "
                         f"{s['improved_seeds']}/{len(runs)} |")
    lines += ["", "Per seed (accuracy / process label accuracy, base → SWiRL):", ""]
    for r in runs:
        last = list(r["evals"])[-1]
        cells = [f"{env}: {r['evals']['base'][env]['accuracy']:.3f}/{r['evals']['base'][env]['process_label_accuracy']:.3f}"
                 f" → {r['evals'][last][env]['accuracy']:.3f}/{r['evals'][last][env]['process_label_accuracy']:.3f}"
                 for env in r["evals"]["base"]]
        lines.append(f"- seed {r['config']['seed']}: " + "; ".join(cells))
    lines += ["", "| stage | seconds (mean ± std) |", "|---|---|"]
    lines += [f"| {stage} | {ms[0]:.1f} ± {ms[1]:.1f} |" for stage, ms in summary["timings"].items()]
    lines += [f"| total | {summary['total_seconds'][0]:.1f} ± {summary['total_seconds'][1]:.1f} |", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one full pipeline run per seed")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--work-dir", default=str(RESULTS / "tmp" / "pipeline"), help="where the runs go (resumable)")
    p.add_argument("--out", default=str(RESULTS / "pipeline"), help="results path without extension")
    args = p.parse_args(argv)
    command = "python benchmarks/pipeline_bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    runs = []
    for seed in args.seeds:
        config = PipelineConfig(run_dir=str(Path(args.work_dir) / f"seed_{seed}"), seed=seed, threads=args.threads)
        start = time.perf_counter()
        result = run_pipeline(config)
        metrics = json.loads((result.run_dir / "metrics.json").read_text())
        print(f"seed {seed}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        runs.append(metrics)
    summary = summarize(runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "versions": versions(), "summary": summary,
              "runs": [{k: r[k] for k in ("config", "evals", "rounds", "timings")} for r in runs]}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    page = markdown(summary, runs, command)
    out.with_suffix(".md").write_text(page)
    print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
