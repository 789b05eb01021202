"""The main job, repeated: ``swirl pipeline`` with its default settings over several seeds.

    python benchmarks/pipeline_bench.py                    # seeds 0 1 2, default PipelineConfig
    python benchmarks/pipeline_bench.py --seeds 0 1 2 3 4 --threads 2

Each seed is one full run (its own tiny base policy, sampled data, SWiRL rounds and evaluation on
the same held-out test questions) in ``benchmarks/results/tmp/pipeline/seed_<k>``. Reports, per env,
mean ± standard deviation over seeds of the base and SWiRL policies' accuracy and process label
accuracy, and of the per-seed difference, whatever the outcome, every round per seed, the data each round kept,
and each stage's wall and CPU time.
Writes ``benchmarks/results/pipeline.json`` and ``pipeline.md`` with the command behind the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, machine, measured, reproducing_command  # noqa: E402

from swirl_agents.pipeline import PipelineConfig, run_pipeline  # noqa: E402
from swirl_agents.pipeline.stages import in_processes  # noqa: E402
from swirl_agents.runinfo import versions  # noqa: E402

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
    out["cpu_seconds"] = {stage: mean_std([r["cpu_seconds"][stage] for r in runs]) for stage in runs[0]["timings"]
                          if all(stage in r.get("cpu_seconds", {}) for r in runs)}
    out["total_seconds"] = mean_std([sum(r["timings"].values()) for r in runs])
    return out


def markdown(summary: dict, runs: list[dict], record: dict) -> str:
    """The results page: the command, the machine, the mean ± std table, every round per seed, the data each round
    kept and stage timings (wall and, where the run kept it, CPU)."""
    fmt = lambda ms: f"{ms[0]:.3f} ± {ms[1]:.3f}"  # noqa: E731
    rounds = len(runs[0]["rounds"])
    seed_seconds = ", ".join(f"{sum(r['timings'].values()):.0f}" for r in runs)
    lines = ["# Pipeline benchmark: the main job over seeds", "", f"Command: `{record['command']}`", "",
             f"Seeds: {', '.join(str(r['config']['seed']) for r in runs)}; {rounds} SWiRL round(s) per seed; "
             f"torch threads: {runs[0]['config']['threads'] or 'default'}. Machine: "
             f"{describe(record['cost'], record['machine'])} (this invocation: a resumed stage is not re-run); "
             f"each seed's stages took {seed_seconds} s of wall time.",
             "", f"| env | metric | base | SWiRL ({rounds} round{'s' * (rounds != 1)}) | difference | seeds improved |",
             "|---|---|---|---|---|---|"]
    for env, per_metric in summary["envs"].items():
        for metric, s in per_metric.items():
            lines.append(f"| {env} | {metric} | {fmt(s['base'])} | {fmt(s['swirl'])} | {fmt(s['difference'])} | "
                         f"{s['improved_seeds']}/{len(runs)} |")
    lines += ["", "Per seed, every policy in order (accuracy, then process label accuracy):", ""]
    for r in runs:
        cells = [f"{env}: " + " → ".join(f"{e[env]['accuracy']:.3f}" for e in r["evals"].values())
                 + " (" + " → ".join(f"{e[env]['process_label_accuracy']:.3f}" for e in r["evals"].values()) + ")"
                 for env in r["evals"]["base"]]
        lines.append(f"- seed {r['config']['seed']}: " + "; ".join(cells))
    lines += ["", "Episodes the process filter kept per round, of those sampled (per seed):", ""]
    for r in runs:
        cells = [f"{env}: " + ", ".join(f"{stats['per_env'][env]['episodes_kept']}/{stats['per_env'][env]['episodes']}"
                                        for stats in r["rounds"]) for env in r["evals"]["base"]]
        lines.append(f"- seed {r['config']['seed']}: " + "; ".join(cells))
    cpu = summary.get("cpu_seconds", {})
    lines += ["", "| stage | seconds (mean ± std) | CPU seconds (mean ± std) |", "|---|---|---|"]
    lines += [f"| {stage} | {ms[0]:.1f} ± {ms[1]:.1f} | "
              f"{f'{cpu[stage][0]:.1f} ± {cpu[stage][1]:.1f}' if stage in cpu else '-'} |"
              for stage, ms in summary["timings"].items()]
    lines += [f"| total | {summary['total_seconds'][0]:.1f} ± {summary['total_seconds'][1]:.1f} | |", "",
              "CPU seconds are shown where every seed's run kept them (stages run before the pipeline recorded CPU "
              "time show '-').", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one full pipeline run per seed")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own process (2 with "
                                                       "--threads 1 on a 2-core machine)")
    p.add_argument("--work-dir", default=str(RESULTS / "tmp" / "pipeline"), help="where the runs go (resumable)")
    p.add_argument("--out", default=str(RESULTS / "pipeline"), help="results path without extension")
    p.add_argument("--note", default="", help="a line for the results page, e.g. the whole run's wall and CPU time "
                                               "when this invocation only resumed it")
    args = p.parse_args(argv)
    command = reproducing_command("pipeline_bench.py", list(sys.argv[1:] if argv is None else argv))
    info = machine()
    configs = [PipelineConfig(run_dir=str(Path(args.work_dir) / f"seed_{seed}"), seed=seed, threads=args.threads)
               for seed in args.seeds]
    with measured() as cost:
        results = in_processes(run_pipeline, configs, args.jobs)
    runs = [json.loads((result.run_dir / "metrics.json").read_text()) for result in results]
    summary = summarize(runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "note": args.note, "machine": info, "cost": cost, "versions": versions(),
              "summary": summary,
              "runs": [{k: r.get(k, {}) for k in ("config", "evals", "rounds", "timings", "cpu_seconds")} for r in runs]}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    page = markdown(summary, runs, record) + (f"\nNote: {args.note}\n" if args.note else "")
    out.with_suffix(".md").write_text(page)
    print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
