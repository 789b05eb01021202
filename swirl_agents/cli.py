"""The ``swirl`` command: generate, judge, filter, train, evaluate, and the whole pipeline.

Every subcommand's flags come from a config dataclass (one documented field, one flag; nested configs
give ``--name.field`` flags) and every run writes its config, the package versions and the git commit
beside its results. Ordinary mistakes (an unknown env id, a missing model or file, a bad flag value, a
server that keeps failing, Ctrl-C) end with a one-paragraph message and a non-zero exit code, never a
traceback (``SWIRL_DEBUG=1`` shows it); a command that fails validation leaves no run folder behind.
Re-running a command with the same folder resumes it.

Exit codes: 0 success, 1 a run failed (e.g. a server kept failing), 2 a usage or input error,
130 interrupted (re-run the same command to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swirl_agents.configs import add_dataclass_arguments, from_namespace


def check_env_ids(env_ids: Sequence[str], flag: str) -> tuple[str, ...]:
    """``env_ids`` as a tuple; ``ValueError`` naming ``flag`` and the closest known id for an unknown one."""
    import difflib

    import gymnasium as gym

    import swirl_env  # noqa: F401  (registers the env ids)

    known = sorted(i for i in gym.registry if i.startswith("Swirl"))
    for env_id in env_ids:
        if env_id not in gym.registry:
            close = difflib.get_close_matches(env_id, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{flag}: expected a registered env id, actual {env_id!r}{hint} (known: {', '.join(known)})")
    if not env_ids:
        raise ValueError(f"{flag}: expected at least one env id, actual none")
    return tuple(env_ids)


@dataclass
class GenerateConfig:
    """Record episodes of an agent in one or more envs."""

    env: tuple[str, ...] = ("SwirlSynthQA-v0",)
    """Env ids to generate in (several go into one episode file)."""
    agent: str = "reference"
    """``reference``, ``reference-noisy``, ``replay:PATH``, ``openai:URL:MODEL``, ``transformers:MODEL`` or a model
    name/folder/.gguf (e.g. ``smollm2-135m-instruct``)."""
    run_dir: str = "runs/generate"
    """Folder for episodes.jsonl, faults.jsonl, config.json and versions.json; re-running resumes."""
    num_questions: int | None = None
    """First N questions of each env (default all)."""
    samples: int = 1
    """Episodes per question."""
    split: str = ""
    """Data split (default: the env's own)."""
    env_kwargs: dict[str, dict] = field(default_factory=dict)
    """Per-env arguments, e.g. ``{"SwirlHotpot-v0": {"top_k": 2}}`` (JSON), as in ``swirl pipeline``."""
    batch_size: int = 16
    """Episodes run in lockstep (observations per agent call)."""
    seed: int = 0
    """Root seed of the run."""
    max_new_tokens: int = 256
    """Model agents: longest step in tokens."""
    temperature: float = 1.0
    """Model agents: sampling temperature (0: greedy)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        self.env = check_env_ids(self.env, "--env")


@dataclass
class JudgeConfig:
    """Judge every step of recorded episodes."""

    episodes: str = "runs/generate/episodes.jsonl"
    """Episode file to judge."""
    judge: str = "reference"
    """``reference`` (gold-guided), ``outcome``, ``llm:MODEL`` or ``llm-logprob:MODEL`` (MODEL: a model name or folder,
    ``transformers:PATH``, ``openai:URL:MODEL``)."""
    out: str = ""
    """Judgments JSONL (default: judgments.jsonl beside the episodes)."""
    cache: str = ""
    """SQLite judgment cache (default: judgments.sqlite beside the episodes); re-runs make no new model calls."""
    chat: bool = False
    """LLM judges: send the prompt as a chat message (instruction-tuned models)."""
    batch_size: int = 32
    """Steps per judge call."""


@dataclass
class FilterConfig:
    """Select training transitions from judged episodes (SWiRL's four data strategies)."""

    episodes: str = "runs/generate/episodes.jsonl"
    """Episode file."""
    judgments: str = ""
    """Judgments JSONL (default: judgments.jsonl beside the episodes)."""
    strategy: str = "process"
    """``none``, ``outcome``, ``process`` (every step GOOD; the paper's best) or ``process+outcome``."""
    out: str = ""
    """Transitions JSONL (default: transitions.jsonl beside the episodes)."""

    def __post_init__(self) -> None:
        from swirl_agents.filters import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy: expected one of {STRATEGIES}, actual {self.strategy!r}")


@dataclass
class EvaluateConfig:
    """Run a policy on held-out questions: accuracy and process label accuracy."""

    env: tuple[str, ...] = ("SwirlSynthQA-v0",)
    """Env ids to evaluate in."""
    agent: str = "reference"
    """``reference``, ``replay:PATH``, ``openai:URL:MODEL``, ``transformers:MODEL`` or a model name/folder/.gguf."""
    run_dir: str = "runs/evaluate"
    """Folder for episodes, metrics.json, config.json and versions.json; re-running resumes."""
    split: str = ""
    """Data split (default: each env's held-out split, as in ``swirl pipeline``)."""
    num_questions: int | None = 200
    """First N questions of the split (default 200; none for all)."""
    env_kwargs: dict[str, dict] = field(default_factory=dict)
    """Per-env arguments, e.g. ``{"SwirlHotpot-v0": {"top_k": 2}}`` (JSON), as in ``swirl pipeline``."""
    batch_size: int = 16
    """Episodes run in lockstep."""
    seed: int = 0
    """Root seed."""
    max_new_tokens: int = 256
    """Model agents: longest step in tokens."""
    temperature: float = 0.0
    """Model agents: sampling temperature (0: greedy)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        self.env = check_env_ids(self.env, "--env")


@dataclass
class ShowConfig:
    """Show recorded episodes step by step: actions, tool results, judgments and scores (text, Markdown or HTML)."""

    episodes: str = "runs/generate/episodes.jsonl"
    """Episode file to show."""
    judgments: str = ""
    """Judgments JSONL (default: judgments.jsonl beside the episodes, when there is one)."""
    first: int = 1
    """Show the first N episodes (0: all)."""
    episode_id: tuple[str, ...] = ()
    """Show these episodes instead (ids as in the file, e.g. ``SwirlHotpot-v0/5a71224f5542994082a3e5c1/0``)."""
    format: str = "text"
    """``text`` (for a terminal), ``markdown`` or ``html`` (a self-contained page)."""
    out: str = ""
    """Write to this file instead of printing."""
    width: int = 0
    """Text: columns to wrap at (0: the terminal's width)."""
    max_chars: int = 600
    """Characters of a tool result shown before it is cut with a note (0: all)."""

    def __post_init__(self) -> None:
        from swirl_agents.show import FORMATS

        if self.format not in FORMATS:
            raise ValueError(f"--format: expected one of {FORMATS}, actual {self.format!r}")


def _env(env_id: str, split: str, env_kwargs: dict):
    """``gym.make`` with a message that names the known ids (and the split an env has) when it fails."""
    from swirl_agents.pipeline.config import env_kwargs_for
    from swirl_agents.rollout import make_env

    return make_env(env_id, **({"split": split} if split else {}), **env_kwargs_for(env_id, env_kwargs))


@dataclass
class ExportConfig:
    """Export a run's episodes, judgments and transitions as a Hugging Face dataset (Parquet files and a card)."""

    episodes: str = "runs/generate/episodes.jsonl"
    """Episode file."""
    judgments: str = ""
    """Judgments JSONL (default: judgments.jsonl beside the episodes, when it exists); exported as judged.parquet."""
    transitions: str = ""
    """Transitions JSONL from ``swirl filter`` (default: transitions.jsonl beside the episodes, when it exists)."""
    out_dir: str = ""
    """Folder for the Parquet files and README.md (default: hf/ beside the episodes); load with
    ``datasets.load_dataset(out_dir, "transitions")``."""


def cmd_export(c: ExportConfig) -> int:
    from swirl_agents.interop.hf_datasets import export_run
    from swirl_agents.runinfo import write_run_info

    def given_or_beside(given: str, name: str) -> str | None:
        path = given or _beside(c.episodes, name)
        return path if given or Path(path).exists() else None

    out_dir = c.out_dir or _beside(c.episodes, "hf")
    files = export_run(c.episodes, given_or_beside(c.judgments, "judgments.jsonl"),
                       given_or_beside(c.transitions, "transitions.jsonl"), out_dir=out_dir)
    write_run_info(out_dir, c, name="export_config.json")
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


def cmd_generate(c: GenerateConfig) -> int:
    from swirl_agents.agents.factory import make_agent
    from swirl_agents.rollout import generate_episodes
    from swirl_agents.runinfo import write_run_info

    envs = [_env(e, c.split, c.env_kwargs) for e in c.env]
    agents = [make_agent(c.agent, env, seed=c.seed, temperature=c.temperature, max_new_tokens=c.max_new_tokens,
                         batch_size=c.batch_size) for env in envs]
    run = write_run_info(c.run_dir, c)
    faults = 0
    for env_id, env, agent in zip(c.env, envs, agents):
        summary = generate_episodes(env, agent, out=run / "episodes.jsonl", num_questions=c.num_questions,
                                    samples_per_question=c.samples, batch_size=c.batch_size, seed=c.seed,
                                    progress=c.progress)
        faults += summary.faults
        print(f"{env_id} -> {run / 'episodes.jsonl'}\n{summary}")
    if faults:
        print(f"{faults} episodes could not be generated (see {run / 'faults.jsonl'}); re-run the same command to "
              "retry them", file=sys.stderr)
    return 1 if faults else 0


def questions_of(episodes) -> list:
    """The questions behind recorded episodes, loaded from their envs (any split that has them)."""
    import gymnasium as gym

    import swirl_env  # noqa: F401  (registers the env ids)

    wanted: dict[str, set[str]] = {}
    for ep in episodes:
        wanted.setdefault(ep.env_id, set()).add(ep.question_id)
    found = []
    for env_id, qids in wanted.items():
        for split in (None, "train", "test", "dev"):
            try:
                env = gym.make(env_id, **({"split": split} if split else {}))
            except (ValueError, KeyError, OSError, gym.error.Error):
                continue
            hits = [q for q in env.unwrapped.questions if q.id in qids]
            if hits:
                found.append((env, hits))
            qids -= {q.id for q in hits}
            if not qids:
                break
        if qids:
            raise KeyError(f"{len(qids)} question ids of {env_id} are in no split of its data, e.g. {sorted(qids)[:3]}")
    return found


def cmd_judge(c: JudgeConfig) -> int:
    from swirl_agents.episodes import read_episodes
    from swirl_agents.judges import (CachedJudge, EpisodeJudge, JudgmentCache, count_faults, judge_episodes,
                                     make_judge, process_label_accuracy, write_judgments)
    from swirl_agents.runinfo import write_run_info

    episodes = list(read_episodes(c.episodes))
    envs = [env for env, _ in questions_of(episodes)] if c.judge == "reference" else []
    judge = make_judge(c.judge, envs=envs, chat=c.chat)
    if not isinstance(judge, EpisodeJudge):
        judge = CachedJudge(judge, JudgmentCache(c.cache or _beside(c.episodes, "judgments.sqlite")))
    write_run_info(Path(c.episodes).parent, c, name="judge_config.json")
    judgments = judge_episodes(episodes, judge, batch_size=c.batch_size, progress=True)
    out = c.out or _beside(c.episodes, "judgments.jsonl")
    write_judgments(out, judgments)
    hits = f", cache hits {judge.hits}, model calls {judge.misses}" if isinstance(judge, CachedJudge) else ""
    faults = count_faults(judgments)
    print(f"judged {sum(map(len, judgments.values()))} steps of {len(episodes)} episodes -> {out}; "
          f"GOOD share {process_label_accuracy(judgments):.3f}{hits}; faults {faults}")
    if faults:
        print(f"{faults} steps could not be judged (their backend failed); re-run the same command to judge them",
              file=sys.stderr)
    return 1 if faults else 0


def cmd_filter(c: FilterConfig) -> int:
    from swirl_agents.episodes import read_episodes, write_transitions
    from swirl_agents.filters import filter_transitions
    from swirl_agents.judges import read_judgments
    from swirl_agents.runinfo import write_run_info

    episodes = list(read_episodes(c.episodes))
    judgments = read_judgments(c.judgments or _beside(c.episodes, "judgments.jsonl"))
    transitions, stats = filter_transitions(episodes, judgments, c.strategy)
    out = c.out or _beside(c.episodes, "transitions.jsonl")
    write_transitions(out, transitions)
    write_run_info(Path(out).parent, c, name="filter_config.json")
    Path(out).with_suffix(".stats.json").write_text(json.dumps(stats.__dict__, indent=2) + "\n")
    print(f"{stats} -> {out}")
    return 0


def cmd_train(c, transitions: str) -> int:
    from swirl_agents.zoo import resolve_model

    if not c.model or not c.output_dir:
        raise ValueError("--model and --output-dir are required (a model: a named model such as smollm2-135m-instruct, "
                         "a .gguf file, a model folder or a hub id)")
    resolve_model(c.model)  # a missing model is an error now, before torch is even imported
    from swirl_agents.episodes import read_transitions
    from swirl_agents.training import train

    result = train(c, read_transitions(transitions))
    print(f"trained {result.steps} steps -> {result.final_model_dir or result.output_dir}")
    return 0


def cmd_evaluate(c: EvaluateConfig) -> int:
    from swirl_agents.agents.factory import make_agent
    from swirl_agents.evaluate import evaluate
    from swirl_agents.runinfo import write_run_info
    from swirl_env.cards import eval_split

    envs = [_env(e, c.split or eval_split(e), c.env_kwargs) for e in c.env]
    agent = make_agent(c.agent, envs[0], seed=c.seed, temperature=c.temperature, max_new_tokens=c.max_new_tokens,
                       batch_size=c.batch_size)
    run = write_run_info(c.run_dir, c)
    results = []
    for env_id, env in zip(c.env, envs):
        agent_here = make_agent(c.agent, env, seed=c.seed) if c.agent.startswith("reference") else agent
        results.append(evaluate(env, agent_here, out=run / f"episodes_{env_id}.jsonl", num_questions=c.num_questions,
                                batch_size=c.batch_size, seed=c.seed, progress=c.progress).to_dict())
    (run / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| env | split | episodes | accuracy | F1 | process label acc. | answered | malformed | faults |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['env_id']} | {r['split']} | {r['episodes']} | {r['accuracy']:.3f} | {r['f1']:.3f} "
              f"| {r['process_label_accuracy']:.3f} | {r['answered']:.3f} | {r['malformed_rate']:.3f} | {r['faults']} |")
    return 1 if any(r["faults"] for r in results) else 0


def cmd_pipeline(c) -> int:
    from swirl_agents.pipeline.stages import run_pipeline

    run_pipeline(c)
    return 0


def cmd_show(c: ShowConfig) -> int:
    import shutil

    from swirl_agents.show import show

    width = c.width or min(shutil.get_terminal_size().columns, 120)
    text = show(c.episodes, judgments=c.judgments, first=c.first, episode_ids=c.episode_id, fmt=c.format,
                width=width, max_chars=c.max_chars)
    if not c.out:
        sys.stdout.write(text)
        return 0
    Path(c.out).parent.mkdir(parents=True, exist_ok=True)
    Path(c.out).write_text(text, encoding="utf-8")
    print(f"{c.format} -> {c.out}")
    return 0


def _beside(episodes: str, name: str) -> str:
    return str(Path(episodes).with_name(name))


def cmd_compare(c) -> int:
    from swirl_agents.pipeline.compare import run_comparison

    results = run_comparison(c)
    print((Path(c.run_dir) / "report.md").read_text())
    return 0 if results else 1


COMMANDS = {
    "pipeline": ("swirl_agents.pipeline.config", "PipelineConfig", cmd_pipeline),
    "compare": ("swirl_agents.pipeline.compare", "CompareConfig", cmd_compare),
    "generate": (__name__, "GenerateConfig", cmd_generate),
    "judge": (__name__, "JudgeConfig", cmd_judge),
    "filter": (__name__, "FilterConfig", cmd_filter),
    "train": ("swirl_agents.training.config", "TrainConfig", cmd_train),
    "evaluate": (__name__, "EvaluateConfig", cmd_evaluate),
    "export": (__name__, "ExportConfig", cmd_export),
    "show": (__name__, "ShowConfig", cmd_show),
}


def _config_class(name: str) -> type:
    import importlib

    module, cls, _ = COMMANDS[name]
    return getattr(importlib.import_module(module), cls)


def _defaults(command: str, cls: type, argv: Sequence[str]) -> object | None:
    """The defaults shown and used: ``swirl pipeline --model X`` (and ``compare``) start from the real-model recipe."""
    if command not in ("pipeline", "compare") or "--model" not in argv or argv.index("--model") + 1 >= len(argv):
        return None
    model = argv[argv.index("--model") + 1]
    if not model:
        return None
    from swirl_agents.pipeline.config import PipelineConfig

    return PipelineConfig.for_model(model) if command == "pipeline" else cls(pipeline=PipelineConfig.for_model(model))


def build_parser(command: str | None = None, argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``swirl`` parser; with ``command``, only that subcommand's flags are built (fast ``--help``)."""
    from swirl_agents import __version__

    parser = argparse.ArgumentParser(prog="swirl", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"swirl-rl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        if command is not None and name != command:
            sub.add_parser(name, add_help=False)
            continue
        cls = _config_class(name)
        doc = (cls.__doc__ or "").strip().split("\n")[0]
        p = sub.add_parser(name, help=doc, description=doc)
        if name == "train":
            p.add_argument("--transitions", required=True, help="transitions JSONL written by `swirl filter`")
        add_dataclass_arguments(p, cls, defaults=_defaults(name, cls, argv or []))
        p.set_defaults(config_cls=cls)
    return parser


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, KeyError, ValueError, ImportError,
                                                   ConnectionError, PermissionError, IsADirectoryError)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    try:
        args = build_parser(command, argv).parse_args(argv)
        config = from_namespace(args.config_cls, args)
    except (TypeError, ValueError) as e:
        print(f"swirl {command or ''}: {e}", file=sys.stderr)
        return 2
    try:
        if args.command == "train":
            return cmd_train(config, args.transitions)
        return COMMANDS[args.command][2](config)
    except KeyboardInterrupt:
        print(f"\nswirl {args.command}: interrupted; run the same command again to resume where it stopped",
              file=sys.stderr)
        return 130
    except EXPECTED_ERRORS + _more_errors() as e:
        if os.environ.get("SWIRL_DEBUG"):
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"swirl {args.command}: {message}\n(set SWIRL_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1 if isinstance(e, ConnectionError) else 2


def _more_errors() -> tuple[type[BaseException], ...]:
    """Error types of optional parts (gymnasium's registry errors, the record and lock errors)."""
    import gymnasium as gym

    from swirl_agents.jsonl import FileLockedError

    return (gym.error.Error, FileLockedError)


if __name__ == "__main__":
    raise SystemExit(main())
