"""The paper's comparisons over seeds: ``swirl compare`` with its report, a plot and the command behind the numbers.

    python benchmarks/paper_bench.py                                   # built-in world, tiny recipe, 3 seeds, every arm
    python benchmarks/paper_bench.py --out benchmarks/results/paper_real --model smollm2-135m-instruct \\
        --envs SwirlHotpot-v0 SwirlGSM8K-v0 --arms base sft swirl_process swirl_outcome qa_only math_only

Any other flag goes to ``swirl compare`` (``swirl compare --help``). Runs live in ``--work-dir`` and resume.
Writes ``<out>.json`` (every arm x env x seed), ``<out>.md`` (the tables and the paper's findings, measured) and
``<out>.png`` (accuracy per arm with per-seed points and mean ± std, one panel per env).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, machine, measured, reproducing_command  # noqa: E402

from swirl_agents.cli import build_parser  # noqa: E402
from swirl_agents.configs import from_namespace  # noqa: E402
from swirl_agents.pipeline.compare import markdown, run_comparison  # noqa: E402
from swirl_agents.runinfo import versions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def plot(results: dict, path: Path) -> None:
    """Accuracy per arm: one point per seed and mean ± std, one panel per env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs, arms = results["envs"], results["arms"]
    fig, axes = plt.subplots(1, len(envs), figsize=(max(6, 0.55 * len(arms)) * len(envs), 4.2), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for x, arm in enumerate(arms):
            cell = results["table"][arm][env]["accuracy"]
            mean, std = cell["mean_std"]
            ax.errorbar([x], [mean], yerr=[std], fmt="o", color="C0" if arm != "base" else "C3", capsize=4)
            ax.scatter([x + 0.12] * len(cell["per_seed"]), cell["per_seed"], s=10, color="0.5", zorder=3)
        base = results["table"]["base"][env]["accuracy"]["mean_std"][0]
        ax.axhline(base, color="C3", lw=0.8, ls="--")
        ax.set_xticks(range(len(arms)), arms, rotation=60, ha="right", fontsize=8)
        ax.set_title(env)
        ax.set_ylabel("accuracy (held-out)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"accuracy per arm: mean ± std over seeds {results['seeds']} (grey: each seed; dashed: base)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(RESULTS / "paper"), help="results path without extension")
    p.add_argument("--work-dir", help="where the runs go (resumable); default: results/tmp/<name of --out>")
    p.add_argument("--note", default="", help="a line for the results page, e.g. the whole run's wall and CPU time "
                                               "when this invocation only resumed it (not part of the command)")
    args, rest = p.parse_known_args(argv)
    args.work_dir = args.work_dir or str(RESULTS / "tmp" / Path(args.out).name)
    compare_argv = ["compare", "--run-dir", args.work_dir, *rest]
    ns = build_parser("compare", compare_argv).parse_args(compare_argv)
    config = from_namespace(ns.config_cls, ns)
    info = machine()
    with measured() as cost:
        results = run_comparison(config)
    command = reproducing_command("paper_bench.py", argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "machine": info, "cost": cost, "note": args.note, "versions": versions(), **results}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    plot(results, out.with_suffix(".png"))
    model = config.pipeline.model or "the tiny recipe (a 2-layer GPT-2 made locally)"
    from swirl_agents.zoo import model_note

    note = model_note(config.pipeline.model) if config.pipeline.model else ""
    seed_seconds = " s, ".join(f"{sum(t.values()):.0f}" for t in results["timings"].values())
    page = [f"# The paper's comparisons: {', '.join(config.pipeline.envs)}", "",
            f"Command: `{command}`", "", f"Model: {model}" + (f" ({note})" if note else "") + ".",
            f"Machine: {describe(cost, info)} (this invocation: a finished stage is not re-run); each seed's stages "
            f"took {seed_seconds} s of wall time.", "", f"![accuracy per arm]({out.with_suffix('.png').name})", "",
            *([f"Note: {args.note}", ""] if args.note else []), markdown(results)]
    out.with_suffix(".md").write_text("\n".join(page))
    print("\n".join(page))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
