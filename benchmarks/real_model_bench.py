"""SWiRL on a real pretrained model over seeds: the untouched model, its warm start, and SWiRL, on real data.

    python benchmarks/real_model_bench.py                        # SmolLM2-135M-Instruct, HotpotQA + GSM8K, seeds 0 1 2
    python benchmarks/real_model_bench.py --seeds 0 --device cuda --eval-questions 200 --out benchmarks/results/real_model_gpu

Each seed is one ``swirl pipeline --model smollm2-135m-instruct`` run with the real-model recipe's defaults
(``PipelineConfig.for_model``; any ``swirl pipeline`` flag passes through) in ``--work-dir/seed_<k>``, resumable.
Writes ``<out>.json`` and ``<out>.md``: per env, the untouched model (prompted with the action format), the
warm-started base and SWiRL, with exact match and F1 (HotpotQA), accuracy (GSM8K), process label accuracy,
malformed steps, mean steps and tool calls, mean ± std over seeds, per-seed differences and seeds improved,
and each stage's time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, machine, measured  # noqa: E402

from swirl_agents.cli import build_parser  # noqa: E402
from swirl_agents.configs import from_namespace  # noqa: E402
from swirl_agents.pipeline.stages import in_processes, run_pipeline  # noqa: E402
from swirl_agents.runinfo import versions  # noqa: E402
from swirl_agents.zoo import model_note  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = (("accuracy", "accuracy (EM)"), ("f1", "F1"), ("process_label_accuracy", "process label acc."),
           ("malformed_rate", "malformed steps"), ("mean_steps", "mean steps"), ("tool_calls", "tool calls"))
LOWER_IS_BETTER = {"malformed_rate"}
PUBLISHED = ["EvolveR reports HotpotQA EM 0.114 for Qwen2.5-0.5B-Instruct and Search-R1 0.284 for Qwen2.5-3B: "
             "larger models, another retriever (dense, over the 2018 Wikipedia dump) and the full dev set, so they "
             "give scale, not a like-for-like comparison."]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[dict]) -> dict:
    """Per env, policy and metric: mean ± std over seeds; per-seed differences (base - untouched, SWiRL - base)."""
    policies = [p for p in ("untouched", "base", "round_1") if all(p in r["evals"] for r in runs)]
    envs = list(runs[0]["evals"]["base"])
    out: dict = {"policies": policies, "envs": {}}
    for env in envs:
        out["envs"][env] = {}
        for metric, _ in METRICS:
            cell = {p: mean_std([r["evals"][p][env][metric] for r in runs]) for p in policies}
            for a, b in (("untouched", "base"), ("base", "round_1")):
                if a in policies and b in policies:
                    diffs = [r["evals"][b][env][metric] - r["evals"][a][env][metric] for r in runs]
                    improved = sum((d < 0) if metric in LOWER_IS_BETTER else (d > 0) for d in diffs)
                    cell[f"{b} - {a}"] = {"mean_std": mean_std(diffs), "per_seed": diffs, "improved": improved}
            out["envs"][env][metric] = cell
    stages = list(runs[0]["timings"])
    out["timings"] = {s: mean_std([r["timings"].get(s, 0.0) for r in runs]) for s in stages}
    return out


def markdown(summary: dict, runs: list[dict], record: dict) -> str:
    names = {"untouched": "untouched", "base": "warm-started base", "round_1": "SWiRL (1 round)"}
    fmt = lambda ms: f"{ms[0]:.3f} ± {ms[1]:.3f}"  # noqa: E731
    model = record["config"]["model"]
    seed_seconds = " s, ".join(f"{sum(r['timings'].values()):.0f}" for r in runs)
    lines = [f"# SWiRL on {model}: {', '.join(summary['envs'])}", "", f"Command: `{record['command']}`", "",
             f"Model: {model} ({model_note(model)}). Seeds: {', '.join(str(r['config']['seed']) for r in runs)}. "
             f"Machine: {describe(record['cost'], record['machine'])} (this invocation: a resumed stage is not re-run); "
             f"each seed's stages took {seed_seconds} s of wall time "
             f"with torch threads = {record['config']['threads'] or 'one per core'}.", "",
             f"Evaluation: {record['config']['eval_questions']} held-out questions per env (HotpotQA dev, GSM8K test), "
             "greedy, judged by the gold-guided reference judge; env settings "
             f"`{json.dumps(record['config']['env_kwargs'])}`.", ""]
    for env, per_metric in summary["envs"].items():
        head = [names[p] for p in summary["policies"]] + [k for k in per_metric["accuracy"] if " - " in k]
        lines += [f"## {env}", "", "| metric | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
        for metric, title in METRICS:
            cell = per_metric[metric]
            cells = [fmt(cell[p]) for p in summary["policies"]]
            cells += [f"{fmt(v['mean_std'])} ({v['improved']}/{len(runs)})" for k, v in cell.items() if " - " in k]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Differences are taken per seed; (k/n) counts seeds that improved (fewer malformed steps counts as "
              "an improvement).", "", "Per seed (accuracy: untouched / base / SWiRL):", ""]
    for r in runs:
        cells = [f"{env}: " + " / ".join(f"{r['evals'][p][env]['accuracy']:.3f}" for p in summary["policies"])
                 for env in summary["envs"]]
        kept = "; ".join(f"{e}: kept {v['episodes_kept']}/{v['episodes']}" for e, v in r["rounds"][0]["per_env"].items())
        lines.append(f"- seed {r['config']['seed']}: " + "; ".join(cells) + f" (process filter {kept})")
    lines += ["", "What the judge saw in the SWiRL round's samples (all seeds), the data SWiRL learns from:", "",
              "| seed | steps | GOOD | malformed | other BAD | episodes kept by the process filter |", "|---|---|---|---|---|---|"]
    for r in runs:
        d = r.get("judged_steps")
        if d:
            lines.append(f"| {r['config']['seed']} | {d['steps']} | {d['good']} | {d['malformed']} | {d['bad'] - d['malformed']} "
                         f"| {d['kept']} of {d['episodes']} |")
    lines += ["", "| stage | seconds (mean ± std) |", "|---|---|"]
    lines += [f"| {s} | {m:.0f} ± {sd:.0f} |" for s, (m, sd) in summary["timings"].items()]
    lines += ["", "For scale: " + " ".join(PUBLISHED), ""]
    return "\n".join(lines)


def judged_steps(round_dir: Path) -> dict | None:
    """Counts of the round's judged steps (GOOD, BAD, malformed) and of the episodes the process filter kept."""
    from swirl_agents.jsonl import read_jsonl

    path = round_dir / "judgments.jsonl"
    if not path.exists():
        return None
    labels = [j for record in read_jsonl(path, dict, "judgments") for j in record["judgments"]]
    filtered = json.loads((round_dir / "filter.json").read_text())
    return {"steps": len(labels), "good": sum(j["label"] == "GOOD" for j in labels),
            "bad": sum(j["label"] != "GOOD" for j in labels),
            "malformed": sum(j["rationale"].startswith("malformed step") for j in labels),
            "episodes": filtered["episodes"], "kept": filtered["episodes_kept"]}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--out", default=str(RESULTS / "real_model"), help="results path without extension")
    p.add_argument("--work-dir", default=str(RESULTS / "tmp" / "real_model"), help="where the runs go (resumable)")
    p.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own process (2 with "
                                                       "--threads 1 on a 2-core machine)")
    args, rest = p.parse_known_args(argv)
    configs = []
    for seed in args.seeds:
        pipeline_argv = ["pipeline", "--model", args.model, "--seed", str(seed),
                         "--run-dir", str(Path(args.work_dir) / f"seed_{seed}"), *rest]
        ns = build_parser("pipeline", pipeline_argv).parse_args(pipeline_argv)
        configs.append(from_namespace(ns.config_cls, ns))
    info = machine()
    with measured() as cost:
        results = in_processes(run_pipeline, configs, args.jobs)
    runs = [{**json.loads((result.run_dir / "metrics.json").read_text()),
             "judged_steps": judged_steps(result.run_dir / "round_1")} for result in results]
    record = {"command": "python benchmarks/real_model_bench.py " + " ".join(argv), "machine": info, "cost": cost,
              "versions": versions(), "config": runs[0]["config"], "summary": summarize(runs),
              "runs": [{k: r[k] for k in ("config", "evals", "rounds", "timings", "judged_steps")} for r in runs]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    page = markdown(record["summary"], runs, record)
    out.with_suffix(".md").write_text(page)
    print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
