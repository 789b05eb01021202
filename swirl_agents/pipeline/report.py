"""A pipeline run's report: a markdown before/after table and PNG plots (matplotlib, Agg backend).

:func:`write_report` turns a run's ``metrics.json`` content into ``report.md`` (rows = policies,
columns per env), ``eval.png`` (accuracy and process label accuracy of every policy per env) and
``training.png`` (loss and reward curves from the trainers' ``metrics.jsonl``).

Example:
    >>> evals = {"base": {"SwirlSynthMath-v0": {"accuracy": 0.1, "process_label_accuracy": 0.4,
    ...                                          "answered": 0.9, "malformed_rate": 0.05, "episodes": 20}}}
    >>> print(markdown_table(evals))
    | policy | SwirlSynthMath-v0 accuracy | SwirlSynthMath-v0 process label acc. | SwirlSynthMath-v0 answered | SwirlSynthMath-v0 malformed |
    |---|---|---|---|---|
    | base | 0.100 | 0.400 | 0.900 | 0.050 |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

COLUMNS = (("accuracy", "accuracy"), ("process_label_accuracy", "process label acc."),
           ("answered", "answered"), ("malformed_rate", "malformed"))
"""Metric key and column title, per env, in the table."""


def markdown_table(evals: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Rows = policies (in order), columns = each env's accuracy, process label accuracy, answered and malformed rates."""
    envs = list(dict.fromkeys(env for per_env in evals.values() for env in per_env))
    head = ["policy"] + [f"{env} {title}" for env in envs for _, title in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for policy, per_env in evals.items():
        cells = [policy]
        for env in envs:
            result = per_env.get(env, {})
            cells += [f"{result[key]:.3f}" if key in result else "" for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def delta_lines(evals: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """One line per env: last policy minus the first (base), in points, for accuracy and process label accuracy.

    Example:
        >>> delta_lines({"base": {"E": {"accuracy": 0.1, "process_label_accuracy": 0.5, "episodes": 100}},
        ...              "round_1": {"E": {"accuracy": 0.25, "process_label_accuracy": 0.6, "episodes": 100}}})
        ['- E: accuracy 0.100 → 0.250 (+15.0 points, ± 10.3 at 95%), process label accuracy 0.500 → 0.600 (+10.0 points)']
    """
    names = list(evals)
    if len(names) < 2:
        return []
    first, last = evals[names[0]], evals[names[-1]]
    out = []
    for env in last:
        if env not in first:
            continue
        a, b = first[env], last[env]
        acc, pla = b["accuracy"] - a["accuracy"], b["process_label_accuracy"] - a["process_label_accuracy"]
        out.append(f"- {env}: accuracy {a['accuracy']:.3f} → {b['accuracy']:.3f} ({100 * acc:+.1f} points, "
                   f"± {100 * _noise(a, b):.1f} at 95%), process label accuracy {a['process_label_accuracy']:.3f} → "
                   f"{b['process_label_accuracy']:.3f} ({100 * pla:+.1f} points)")
    return out


def _noise(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Half-width of a 95% interval on a difference of two accuracies measured on ``episodes`` questions each."""
    var = sum(r["accuracy"] * (1 - r["accuracy"]) / max(r.get("episodes", 1), 1) for r in (a, b))
    return 1.96 * var ** 0.5


def plot_evals(evals: Mapping[str, Mapping[str, Mapping[str, Any]]], path: str | Path) -> Path:
    """Grouped bars: accuracy and process label accuracy of every policy, one panel per metric, one group per env."""
    plt = _pyplot()
    envs = list(dict.fromkeys(env for per_env in evals.values() for env in per_env))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / max(len(evals), 1)
    for ax, (key, title) in zip(axes, COLUMNS[:2]):
        for k, (policy, per_env) in enumerate(evals.items()):
            xs = [i + k * width for i in range(len(envs))]
            values = [per_env.get(env, {}).get(key, 0.0) for env in envs]
            bars = ax.bar(xs, values, width, label=policy)
            ax.bar_label(bars, fmt="%.2f", fontsize=8)
        ax.set_xticks([i + width * (len(evals) - 1) / 2 for i in range(len(envs))], envs, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle("held-out evaluation")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The records of a trainer's ``metrics.jsonl`` (empty if the file is missing)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training(curves: Mapping[str, list[dict[str, float]]], path: str | Path) -> Path:
    """Loss and mean reward against the optimizer step, one line per training run (``sft``, ``round_1``, ...)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, records in curves.items():
        steps = [r["step"] for r in records]
        axes[0].plot(steps, [r["losses/total"] for r in records], label=name)
        axes[1].plot(steps, [r["charts/reward_mean"] for r in records], label=name)
    for ax, title in zip(axes, ("loss (losses/total)", "mean reward of trained actions (charts/reward_mean)")):
        ax.set_xlabel("optimizer step")
        ax.set_title(title, fontsize=10)
        if curves:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_report(run_dir: str | Path, metrics: Mapping[str, Any]) -> str:
    """Write ``report.md``, ``eval.png`` and ``training.png`` in ``run_dir``; return the markdown table."""
    run = Path(run_dir)
    evals = metrics["evals"]
    table = markdown_table(evals)
    curves = {"sft (base)": read_metrics(run / "base" / "sft" / "metrics.jsonl")}
    curves.update({name: read_metrics(run / name / "train" / "metrics.jsonl") for name in evals if name != "base"})
    curves = {k: v for k, v in curves.items() if v}
    plot_evals(evals, run / "eval.png")
    plot_training(curves, run / "training.png")
    config = metrics.get("config", {})
    splits = {env: result.get("split", "?") for per_env in evals.values() for env, result in per_env.items()}
    split_text = ", ".join(f"{env}: {split}" for env, split in splits.items())
    lines = [
        "# SWiRL pipeline report", "",
        f"Held-out evaluation (split {split_text}; {config.get('eval_questions', '?')} questions "
        f"per env, temperature {config.get('eval_temperature', 0)}); process label accuracy is the share of the "
        "policy's steps the reference judge calls GOOD.", "",
        table, "", *delta_lines(evals), "",
        "![evaluation](eval.png)", "", "![training](training.png)", "",
    ]
    lines += _rounds_section(metrics.get("rounds", [])) + _timings_section(metrics.get("timings", {}))
    lines += ["", f"Versions: `{json.dumps(metrics.get('versions', {}))}`", "",
              f"Config: `{json.dumps(config)}`", ""]
    (run / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return table


def _rounds_section(rounds: list[Mapping[str, Any]]) -> list[str]:
    lines = ["## Training data per round", "", "| round | env | sampled episodes | sample accuracy | kept episodes | "
             "kept transitions | kept correct |", "|---|---|---|---|---|---|---|"]
    for r, stats in enumerate(rounds, 1):
        for env, s in stats.get("per_env", {}).items():
            lines.append(f"| {r} | {env} | {s['episodes']} | {s['sample_accuracy']:.3f} | {s['episodes_kept']} | "
                         f"{s['transitions_kept']} | {s['correct_kept_share']:.3f} |")
    return lines + [""] if rounds else []


def _timings_section(timings: Mapping[str, float]) -> list[str]:
    if not timings:
        return []
    lines = ["## Stage timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in timings.items()]
    lines.append(f"| total | {sum(timings.values()):.1f} |")
    return lines


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError('matplotlib is needed for the report plots: pip install "swirl-rl[train]"') from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
