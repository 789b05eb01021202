"""A pipeline run's report: a markdown before/after table and plots a reader learns from (matplotlib, Agg backend).

:func:`write_report` turns a run's ``metrics.json`` content into

- ``report.md``: rows = policies, columns per env, the before/after differences with their noise;
- ``eval.png``: accuracy and process label accuracy of every policy per env, ±1 binomial standard error;
- ``training.png``: the warm start and the SWiRL rounds in separate rows (loss, log-prob of the trained
  action tokens, gradient norm: a process-filtered round trains on rewards that are all 1, so its
  reward curve would say nothing), then held-out accuracy after each stage.

:func:`plot_arms` draws several runs (seeds) of the same arms: every seed a point, mean ± std.

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
import math
from collections.abc import Mapping, Sequence
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
    """One line per env: the last policy minus ``base`` (else the first), in points, for accuracy and process label
    accuracy (a model's ``untouched`` evaluation comes before its warm start, so it is not the baseline of SWiRL).

    The ± is a 95% interval on the difference (:func:`_noise`): not 0 when both accuracies are 0.

    Example:
        >>> delta_lines({"base": {"E": {"accuracy": 0.1, "process_label_accuracy": 0.5, "episodes": 100}},
        ...              "round_1": {"E": {"accuracy": 0.25, "process_label_accuracy": 0.6, "episodes": 100}}})
        ['- E, base → round_1: accuracy 0.100 → 0.250 (+15.0 points, ± 10.4 at 95%), process label accuracy 0.500 → 0.600 (+10.0 points)']
    """
    names = list(evals)
    start = "base" if "base" in names else names[0] if names else ""
    if len(names) < 2 or start == names[-1]:
        return []
    first, last = evals[start], evals[names[-1]]
    out = []
    for env in last:
        if env not in first:
            continue
        a, b = first[env], last[env]
        acc, pla = b["accuracy"] - a["accuracy"], b["process_label_accuracy"] - a["process_label_accuracy"]
        out.append(f"- {env}, {start} → {names[-1]}: accuracy {a['accuracy']:.3f} → {b['accuracy']:.3f} "
                   f"({100 * acc:+.1f} points, "
                   f"± {100 * _noise(a, b):.1f} at 95%), process label accuracy {a['process_label_accuracy']:.3f} → "
                   f"{b['process_label_accuracy']:.3f} ({100 * pla:+.1f} points)")
    return out


def _noise(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Half-width of a 95% interval on a difference of two accuracies measured on ``episodes`` questions each.

    Agresti and Caffo's: one success and one failure added to each side, so that 0 of 40 against 0 of 40
    is not reported as certain (plain binomial variance is 0 at an accuracy of 0 or 1).
    """
    def variance(r: Mapping[str, Any]) -> float:
        n = max(int(r.get("episodes", 1)), 1)
        p = (r["accuracy"] * n + 1) / (n + 2)
        return p * (1 - p) / (n + 2)

    return 1.96 * (variance(a) + variance(b)) ** 0.5


def binomial_se(p: float, n: int) -> float:
    """Standard error of a share ``p`` measured on ``n`` independent trials (0 when ``n`` is 0).

    Example:
        >>> round(binomial_se(0.5, 100), 3), binomial_se(0.3, 0)
        (0.05, 0.0)
    """
    return math.sqrt(max(p * (1.0 - p), 0.0) / n) if n > 0 else 0.0


def trials(result: Mapping[str, Any], key: str) -> int:
    """How many trials a metric of one evaluation averages: episodes for accuracy, steps for process label accuracy.

    Steps of one episode are not independent, so the standard error of process label accuracy is a lower bound.
    """
    episodes = int(result.get("episodes", 0))
    return round(episodes * float(result.get("mean_steps", 1.0))) if key == "process_label_accuracy" else episodes


def plot_evals(evals: Mapping[str, Mapping[str, Mapping[str, Any]]], path: str | Path) -> Path:
    """Write :func:`eval_figure` to ``path`` (PNG)."""
    return _save(eval_figure(evals), path)


def eval_figure(evals: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Any:
    """Grouped bars with ±1 binomial standard error: accuracy and process label accuracy of every policy, per env."""
    envs = _envs(evals)
    fig = _figure(max(8.0, 2.2 * len(envs) * 2 + 2), 4.4)
    axes = fig.subplots(1, 2)
    width = 0.8 / max(len(evals), 1)
    for ax, (key, title) in zip(axes, COLUMNS[:2]):
        for k, (policy, per_env) in enumerate(evals.items()):
            xs = [i + (k - (len(evals) - 1) / 2) * width for i, env in enumerate(envs) if key in per_env.get(env, {})]
            results = [per_env[env] for env in envs if key in per_env.get(env, {})]
            values = [r[key] for r in results]
            errors = [binomial_se(r[key], trials(r, key)) for r in results]
            bars = ax.bar(xs, values, width * 0.92, yerr=errors, capsize=3, label=policy, color=_color(k),
                          error_kw={"elinewidth": 1, "ecolor": "#333"})
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=2)
        ax.set_xticks(range(len(envs)), [f"{_short_env(e)}\n(n={_n(evals, e)})" for e in envs], fontsize=9)
        ax.set_ylim(0, 1.08)
        ax.set_title(title, fontsize=11)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", ncol=min(len(evals), 4), frameon=False)
    fig.suptitle("Held-out evaluation (error bars: ±1 binomial standard error; n = episodes per env)", fontsize=11)
    return fig


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The records of a trainer's ``metrics.jsonl`` (empty if the file is missing)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


CURVES = (("losses/total", "loss"), ("charts/logprob_mean", "log-prob of trained action tokens (mean per token)"),
          ("charts/grad_norm", "gradient norm (before clipping)"))
"""Trainer metric and panel title, one column each in ``training.png``."""


def plot_training(warm_start: list[Mapping[str, float]], rounds: Mapping[str, list[Mapping[str, float]]],
                  path: str | Path, evals: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> Path:
    """Write :func:`training_figure` to ``path`` (PNG)."""
    return _save(training_figure(warm_start, rounds, evals), path)


def training_figure(warm_start: list[Mapping[str, float]], rounds: Mapping[str, list[Mapping[str, float]]],
                    evals: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> Any:
    """``training.png``: the warm start and the SWiRL rounds each in their own row of panels (loss, log-prob of the
    trained actions, gradient norm against the optimizer step), and, given ``evals`` of two or more policies,
    held-out accuracy after each stage with ±1 binomial standard error.

    The two stages are not drawn on one axis: the warm start runs thousands of steps of SFT on reference episodes,
    a SWiRL round a few hundred on filtered samples of the policy.
    """
    rows = [("warm start (SFT on reference episodes)", {"sft": list(warm_start)})] if warm_start else []
    if any(rounds.values()):
        rows.append(("SWiRL (step-wise RL on judged, filtered samples)", {k: list(v) for k, v in rounds.items() if v}))
    held_out = evals is not None and len(evals) >= 2
    n_rows = max(len(rows) + held_out, 1)
    fig = _figure(14, 3.6 * n_rows)
    grid = fig.add_gridspec(n_rows, len(CURVES))
    for r, (stage, runs) in enumerate(rows):
        for c, (key, title) in enumerate(CURVES):
            ax = fig.add_subplot(grid[r, c])
            for k, (name, records) in enumerate(runs.items()):
                _curve(ax, records, key, name, _color(k + (0 if r == 0 and warm_start else 1)))
            ax.set_title(f"{stage}\n{title}" if c == 0 else title, fontsize=10, loc="left")
            ax.set_xlabel("optimizer step" + (" (within the round)" if "SWiRL" in stage else ""), fontsize=9)
            ax.grid(alpha=0.3)
            if len(runs) > 1 or c == 0:
                ax.legend(fontsize=8, frameon=False)
    if held_out:
        _held_out_panel(fig.add_subplot(grid[len(rows), :]), evals)
    if not rows and not held_out:
        fig.text(0.5, 0.5, "no training metrics recorded", ha="center", va="center")
    return fig


def _curve(ax: Any, records: list[Mapping[str, float]], key: str, name: str, color: str) -> None:
    """One run's metric against the step; many noisy points are drawn faint with their running mean on top."""
    points = [(r["step"], r[key]) for r in records if key in r and math.isfinite(r[key])]
    if not points:
        return
    steps, values = zip(*points)
    if len(values) < 30:
        ax.plot(steps, values, marker="o" if len(values) < 12 else None, ms=3, color=color, label=name)
        return
    window = max(len(values) // 25, 3)
    ax.plot(steps, values, color=color, alpha=0.25, lw=0.8)
    ax.plot(steps, _running_mean(values, window), color=color, label=f"{name} (running mean of {window})")


def _running_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of each value and the ``window - 1`` before it (fewer at the start).

    Example:
        >>> _running_mean([1, 2, 3, 4], 2)
        [1.0, 1.5, 2.5, 3.5]
    """
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def _held_out_panel(ax: Any, evals: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    """Held-out accuracy of each policy in training order, one line per env, ±1 binomial standard error."""
    policies = list(evals)
    for k, env in enumerate(_envs(evals)):
        points = [(i, evals[p][env]) for i, p in enumerate(policies) if "accuracy" in evals[p].get(env, {})]
        xs = [i + (k - 0.5) * 0.06 for i, _ in points]  # side by side, so the error bars do not hide each other
        ys = [r["accuracy"] for _, r in points]
        errors = [binomial_se(r["accuracy"], trials(r, "accuracy")) for _, r in points]
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=4, color=_color(k), label=f"{env} (n={_n(evals, env)})")
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(7, 5 if k % 2 == 0 else -13),
                        fontsize=8, color=_color(k))
    ax.set_xticks(range(len(policies)), policies)
    ax.set_xlim(-0.4, len(policies) - 0.6)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title("held-out accuracy after each stage (±1 binomial standard error)", fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)


def plot_arms(results: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path, *, metric: str = "accuracy",
              title: str = "") -> Path:
    """Several runs (seeds) of the same arms in one PNG (:func:`arms_figure`): each seed a point, mean ± std beside.

    Args:
        results: ``{arm: {env: [metric per seed]}}``, e.g. ``{"base": {"SwirlSynthMath-v0": [0.31, 0.42, 0.53]}}``.
        path: The PNG to write.
        metric: What the values are (the y label).
        title: The figure title (default: what is plotted and how many seeds).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "arms.png")
        >>> plot_arms({"base": {"SwirlSynthMath-v0": [0.31, 0.42, 0.53]},
        ...            "SWiRL": {"SwirlSynthMath-v0": [0.62, 0.67, 0.72]}}, path).name
        'arms.png'
    """
    return _save(arms_figure(results, metric=metric, title=title), path)


def arms_figure(results: Mapping[str, Mapping[str, Sequence[float]]], *, metric: str = "accuracy",
                title: str = "") -> Any:
    """One panel per env, one column per arm: each seed a point beside the arm's mean ± std (sample std over seeds)."""
    arms, envs = list(results), list(dict.fromkeys(env for per_env in results.values() for env in per_env))
    if not envs:
        raise ValueError("expected results {arm: {env: [value per seed]}} with at least one value, actual none")
    values = [v for per_env in results.values() for vs in per_env.values() for v in vs]
    fig = _figure(max(4.5, 1.3 * len(arms) + 2) * len(envs), 4.4)
    axes = fig.subplots(1, len(envs), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for k, arm in enumerate(arms):
            seeds = [float(v) for v in results[arm].get(env, ())]
            if not seeds:
                continue
            jitter = [(j - (len(seeds) - 1) / 2) * 0.06 for j in range(len(seeds))]
            ax.scatter([k + 0.15 + d for d in jitter], seeds, s=22, color=_color(k), alpha=0.7, zorder=3)
            mean = sum(seeds) / len(seeds)
            std = math.sqrt(sum((v - mean) ** 2 for v in seeds) / (len(seeds) - 1)) if len(seeds) > 1 else 0.0
            ax.errorbar([k - 0.1], [mean], yerr=[std], fmt="s", ms=7, capsize=6, color=_color(k), zorder=4)
            label = f"{mean:.3f} ± {std:.3f}\n({len(seeds)} seed{'s' if len(seeds) != 1 else ''})"
            ax.annotate(label, (k - 0.1, mean), textcoords="offset points", xytext=(-10, 0), ha="right", va="center",
                        fontsize=8)
        ax.set_xticks(range(len(arms)), arms)
        ax.set_xlim(-0.9, len(arms) - 0.4)
        ax.set_ylim(*_share_limits(ax.get_ylim(), values))
        ax.set_title(env, fontsize=11)
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(handles=_arm_legend(), fontsize=8, frameon=False, loc="best")
    seeds = max(len(vs) for per_env in results.values() for vs in per_env.values())
    fig.suptitle(title or f"{metric} per arm: each point one seed, squares mean ± std (up to {seeds} seeds)",
                 fontsize=11)
    return fig


def write_report(run_dir: str | Path, metrics: Mapping[str, Any]) -> str:
    """Write ``report.md``, ``eval.png`` and ``training.png`` in ``run_dir``; return the markdown table.

    ``metrics`` is the pipeline's ``metrics.json`` content: ``config``, ``versions``, ``policies`` (``untouched``,
    ``base``, ``round_1``, ...), ``evals``, ``rounds``, ``timings`` and ``skipped``. Training curves are read from
    the run folder: ``base/sft/metrics.jsonl`` and ``round_N/train/metrics.jsonl``.
    """
    run = Path(run_dir)
    evals = metrics["evals"]
    table = markdown_table(evals)
    warm_start = read_metrics(run / "base" / "sft" / "metrics.jsonl")
    rounds = {name: read_metrics(run / name / "train" / "metrics.jsonl")
              for name in metrics.get("policies", evals) if name.startswith("round_")}
    plot_evals(evals, run / "eval.png")
    plot_training(warm_start, rounds, run / "training.png", evals)
    config = metrics.get("config", {})
    splits = {env: result.get("split", "?") for per_env in evals.values() for env, result in per_env.items()}
    split_text = ", ".join(f"{env}: {split}" for env, split in splits.items())
    counts = ", ".join(f"{env}: {_n(evals, env)}" for env in _envs(evals))
    lines = [
        "# SWiRL pipeline report", "",
        f"Held-out evaluation (split {split_text}; episodes per env {counts}; temperature "
        f"{config.get('eval_temperature', 0)}); process label accuracy is the share of the policy's steps the "
        f"{config.get('judge', 'reference')} judge calls GOOD. Error bars in the plots are ±1 binomial standard "
        "error.",
        "", table, "", *delta_lines(evals), *_untrained_rounds(metrics.get("rounds", [])), *_still_rounds(rounds),
        *_faults(evals), "",
        "![evaluation](eval.png)", "", "![training](training.png)", "",
    ]
    lines += _rounds_section(metrics.get("rounds", []))
    lines += _timings_section(metrics.get("timings", {}), metrics.get("cpu_seconds"))
    lines += ["", f"Versions: `{json.dumps(metrics.get('versions', {}))}`", "",
              f"Config: `{json.dumps(config)}`", ""]
    (run / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return table


def _untrained_rounds(rounds: list[Mapping[str, Any]]) -> list[str]:
    """A line for each round whose filter kept nothing: its policy is the previous one, not a trained one."""
    return [f"- Round {r} did not train: its filter ({stats.get('strategy', '?')}) kept no transitions, so round_{r} "
            "is the previous policy unchanged."
            for r, stats in enumerate(rounds, 1) if stats.get("transitions_kept") == 0]


def _still_rounds(rounds: Mapping[str, list[Mapping[str, float]]]) -> list[str]:
    """A line for each round whose gradient was 0 at every logged step (e.g. every kept step rewarded 0)."""
    return [f"- {name} trained with a gradient of 0 at every logged step (its kept steps were all rewarded 0): "
            "its policy did not change." for name, records in rounds.items()
            if records and all(r.get("charts/grad_norm", 1.0) == 0.0 for r in records)]


def _faults(evals: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """A line for each evaluation that left episodes out (agent faults) or counted unjudged steps as not GOOD."""
    return [f"- {policy} on {env}: {r.get('faults', 0)} episodes could not be run and {r.get('judge_faults', 0)} steps "
            "could not be judged; the figures leave them out (episodes) or count them as not GOOD (steps)."
            for policy, per_env in evals.items() for env, r in per_env.items()
            if r.get("faults") or r.get("judge_faults")]


def _rounds_section(rounds: list[Mapping[str, Any]]) -> list[str]:
    lines = ["## Training data per round", "", "| round | env | sampled episodes | sample accuracy | kept episodes | "
             "kept transitions | kept correct |", "|---|---|---|---|---|---|---|"]
    for r, stats in enumerate(rounds, 1):
        for env, s in stats.get("per_env", {}).items():
            lines.append(f"| {r} | {env} | {s['episodes']} | {s['sample_accuracy']:.3f} | {s['episodes_kept']} | "
                         f"{s['transitions_kept']} | {s['correct_kept_share']:.3f} |")
    return lines + [""] if rounds else []


def _timings_section(timings: Mapping[str, float], cpu: Mapping[str, float] | None = None) -> list[str]:
    """Wall seconds per stage, with CPU seconds beside them where the stage's marker kept them ("-" where not)."""
    if not timings:
        return []
    cpu = cpu or {}
    lines = ["## Stage timings", "", "| stage | seconds | CPU seconds |", "|---|---|---|"]
    lines += [f"| {stage} | {seconds:.1f} | {f'{cpu[stage]:.1f}' if stage in cpu else '-'} |"
              for stage, seconds in timings.items()]
    total_cpu = f"{sum(cpu.values()):.1f}" if cpu and cpu.keys() >= timings.keys() else "-"
    lines.append(f"| total | {sum(timings.values()):.1f} | {total_cpu} |")
    return lines


def _share_limits(auto: tuple[float, float], values: Sequence[float]) -> tuple[float, float]:
    """Y limits for shares: matplotlib's, widened to span at least 0.2 and kept inside [0, 1].

    Fixed [0, 1] flattens the differences a reader looks for; a span fitted to the data blows small ones up.

    Example:
        >>> _share_limits((0.14, 0.19), [0.14, 0.19])
        (0.065, 0.265)
    """
    lo, hi = auto
    if not all(0.0 <= v <= 1.0 for v in values):
        return lo, hi
    grow = max(0.2 - (hi - lo), 0.0) / 2
    lo, hi = max(lo - grow, 0.0), min(hi + grow, 1.0)
    return round(lo, 6), round(hi, 6)


def _arm_legend() -> list[Any]:
    from matplotlib.lines import Line2D

    return [Line2D([], [], ls="", marker="o", ms=5, color="grey", alpha=0.7, label="one seed"),
            Line2D([], [], ls="", marker="s", ms=7, color="grey", label="mean ± std over seeds")]


def _envs(evals: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(env for per_env in evals.values() for env in per_env))


def _n(evals: Mapping[str, Mapping[str, Mapping[str, Any]]], env: str) -> str:
    """The episode count of ``env``'s evaluations (``a-b`` when policies differ, e.g. after agent faults)."""
    counts = sorted({int(per_env[env].get("episodes", 0)) for per_env in evals.values() if env in per_env})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def _short_env(env: str) -> str:
    return env.removeprefix("Swirl")


def _color(k: int) -> str:
    return f"C{k % 10}"


def _save(fig: Any, path: str | Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def _figure(width: float, height: float) -> Any:
    """A matplotlib figure outside pyplot's global state (nothing to close, any backend)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError('matplotlib is needed for the report plots: pip install "swirl-rl[train]"') from e
    return Figure(figsize=(width, height))
