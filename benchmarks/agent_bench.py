"""Agent speed. Part "batched generation": TransformersAgent episodes/s, batched vs one episode at a time.

    python benchmarks/agent_bench.py --threads 1          # 32 SwirlSynthQA-v0 sequential episodes per policy
    python benchmarks/agent_bench.py --episodes 64 --batch-size 16 --max-new-tokens 64
    python benchmarks/agent_bench.py --model smollm2-135m-instruct   # a real model: 16 episodes, batch 16 vs 1

**A real pretrained model** (``--model``, any name :func:`swirl_agents.zoo.resolve_model` takes) plays
the same ``--episodes`` (default ``--batch-size``) SwirlSynthQA-v0 seeds twice, greedily: ``batched``,
``batch_size`` episodes in lockstep, one ``step_batch`` call per step; ``sequential``, one episode after
another at batch 1. Both keep the prefix KV cache. Each mode runs in a process of its own
(:func:`machine.run_isolated`), which gives its peak resident memory and CPU seconds; the table
reports episodes/s and generated tokens/s per wall and per CPU second, and how many episodes came
out identical in the two modes (greedy decoding; padding in a batch can flip a near-tie). Results
go to ``results/agents_smollm2.json`` and ``.md`` for SmolLM2-135M-Instruct (about 10 minutes on
2 quiet CPU cores at the defaults).

**The tiny model** (no ``--model``):

The same tiny model plays SwirlSynthQA-v0 episodes two ways in one run: ``batched`` keeps
``batch_size`` envs in lockstep and asks the agent for all their steps in one ``step_batch`` call;
``sequential`` plays one episode after another at batch 1 (what ``act`` does). Each way has its own agent (and prefix
cache) over the one model. The two are interleaved, the one that has used less wall time going next,
so both see the same load from other jobs on a shared machine (see :func:`measure`). Two policies:

* ``random``: random weights writing ``max_new_tokens`` of garbage per step (malformed steps);
  generation-bound, contexts stay short.
* ``scripted``: the same model rewired (:func:`swirl_agents.tiny.script_model`) to search at every
  step, so each step appends five real retrieved paragraphs: prompt-bound, contexts grow to ~5k
  characters (~1,500 tokens) over a 5-step QA episode.

Beside the throughputs it measures where the CPU goes (:func:`breakdown`): an episode's prompt work and a
decoding step, each at batch 1 and at ``batch_size``, and one pass over an episode's last prompt.

Writes ``benchmarks/results/agents.json`` and ``agents.md`` (with the command behind the numbers; ``--name`` changes the stem).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import model_stem, report, run_isolated  # noqa: E402

import swirl_env  # noqa: E402
import swirl_agents  # noqa: E402
from swirl_env import context as ctx  # noqa: E402
from swirl_agents.agents.hf import TransformersAgent  # noqa: E402
from swirl_agents.tiny import make_tiny_policy, script_model  # noqa: E402
from swirl_agents.zoo import model_note  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SCRIPT = "Find it:<search_query>capital city</search_query>"


@dataclass
class BenchConfig:
    """Settings of the batched-generation benchmark."""

    env_id: str = "SwirlSynthQA-v0"
    """Environment whose episodes are played."""
    model: str = ""
    """A pretrained model (named, .gguf, folder or hub id) to measure instead of the tiny one; empty: the tiny one."""
    episodes: int = 0
    """Episodes per setting (each policy, batched and sequential); 0: 32, or ``batch_size`` with ``--model``."""
    batch_size: int = 16
    """Episodes in lockstep, and prompts per generate call, in the batched setting."""
    max_new_tokens: int = 64
    """Longest step in tokens."""
    n_layer: int = 2
    """Tiny model depth."""
    n_embd: int = 64
    """Tiny model width."""
    n_head: int = 4
    """Attention heads."""
    n_kv_head: int = 1
    """Key/value heads: grouped-query attention, as in the models users run (Llama 3, Qwen, Mistral)."""
    threads: int = 0
    """torch threads (0: torch's default)."""
    seed: int = 0
    """First env seed; episode i uses seed + i."""
    policies: str = "random,scripted"
    """Comma-separated policies to measure (the tiny model)."""
    name: str = ""
    """Results file stem under benchmarks/results; empty: ``agents``, or ``agents_smollm2`` for ``--model smollm2-135m-instruct``."""


def training_texts(n_passages: int = 400) -> list[str]:
    """Rendered contexts and passages from the built-in synthetic world, to fit the tokenizer on."""
    from swirl_env.data.synth import synth_passages

    passages = [f"{p.title}: {p.text}" for p in synth_passages()[:n_passages]]
    start = ctx.render_start(ctx.instructions(("search_query",), 5), "Which river flows through the capital?")
    steps = [(SCRIPT, "\n\n".join(passages[i : i + 5])) for i in range(0, 25, 5)]
    return [ctx.render(start.split("\n\nQuestion: ")[0], "Which river?", steps)] + passages


class Ended(NamedTuple):
    """An episode that ended: its seed, the prompts the agent saw step by step, the final context, and the tokens
    the agent generated over the episode."""

    seed: int
    prompts: list[str]
    final: str
    tokens: int


def play_sequential(agent: TransformersAgent, env: gym.Env, seeds: list[int]) -> Iterator[list[Ended]]:
    """Play each episode to its end, one after another; yield each episode when it ends."""
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        prompts, tokens, done = [], 0, False
        while not done:
            prompts.append(obs)
            step = agent.step_batch([obs])[0]
            tokens += len(step.token_ids)
            obs, _, terminated, truncated, _ = env.step(step.text)
            done = terminated or truncated
        yield [Ended(seed, prompts, obs, tokens)]


def play_batched(agent: TransformersAgent, envs: list[gym.Env], seeds: list[int]) -> Iterator[list[Ended]]:
    """Play ``len(envs)`` episodes in lockstep, cycling through ``seeds`` without end.

    Yields after every ``act_batch`` call the episodes it ended (often none).
    """
    for start in itertools.count(0, len(envs)):
        chunk = [seeds[(start + i) % len(seeds)] for i in range(len(envs))]
        obs = {i: env.reset(seed=s)[0] for i, (env, s) in enumerate(zip(envs, chunk))}
        prompts: dict[int, list[str]] = {i: [] for i in obs}
        tokens = dict.fromkeys(obs, 0)
        while obs:
            active, ended = sorted(obs), []
            for i, step in zip(active, agent.step_batch([obs[i] for i in active])):
                prompts[i].append(obs[i])
                tokens[i] += len(step.token_ids)
                obs[i], _, terminated, truncated, _ = envs[i].step(step.text)
                if terminated or truncated:
                    ended.append(Ended(chunk[i], prompts[i], obs.pop(i), tokens[i]))
            yield ended


@dataclass
class Clock:
    """Time spent in one mode and the episodes it finished."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    ended: list[Ended] = field(default_factory=list)

    def advance(self, run: Iterator[list[Ended]]) -> bool:
        """Run ``run`` to its next yield, timed; ``False`` once it is exhausted."""
        start, cpu_start = time.perf_counter(), time.process_time()
        finished = next(run, None)
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu_start
        self.ended += finished or []
        return finished is not None


def measure(agents: dict[str, TransformersAgent], cfg: BenchConfig) -> dict[str, Clock]:
    """Interleave the two modes, giving the next turn to the one that has used less wall time so far.

    ``sequential`` plays ``cfg.episodes`` episodes; ``batched`` cycles through the same seeds
    meanwhile, then finishes its lockstep chunk. Both modes see the same machine load, so other
    jobs on a shared machine disturb their ratio far less than running one mode after the other.
    """
    seeds = list(range(cfg.seed, cfg.seed + cfg.episodes))
    runs = {"batched": play_batched(agents["batched"], [gym.make(cfg.env_id) for _ in range(cfg.batch_size)], seeds),
            "sequential": play_sequential(agents["sequential"], gym.make(cfg.env_id), seeds)}
    clocks = {mode: Clock() for mode in runs}
    while runs["sequential"] is not None:
        mode = min(runs, key=lambda m: clocks[m].seconds)
        if not clocks[mode].advance(runs[mode]):
            runs["sequential"] = None  # only the sequential run ends
    while not clocks["batched"].ended or len(clocks["batched"].ended) % cfg.batch_size:  # finish the chunk
        clocks["batched"].advance(runs["batched"])
    return clocks


def summarise(policy: str, mode: str, clock: Clock, tokenizer: Any) -> dict:
    """One row of results: throughput per wall and per CPU second, and the size of the final contexts."""
    finals = [e.final for e in clock.ended]
    tokens = [len(tokenizer(f)["input_ids"]) for f in finals]
    generated = sum(e.tokens for e in clock.ended)
    return {"policy": policy, "mode": mode, "episodes": len(finals), "seconds": round(clock.seconds, 3),
            "episodes_per_s": round(len(finals) / clock.seconds, 4), "cpu_seconds": round(clock.cpu_seconds, 3),
            "episodes_per_cpu_s": round(len(finals) / clock.cpu_seconds, 4), "generated_tokens": generated,
            "generated_tokens_per_s": round(generated / clock.seconds, 2),
            "generated_tokens_per_cpu_s": round(generated / clock.cpu_seconds, 2),
            "mean_final_context_chars": round(sum(map(len, finals)) / len(finals)),
            "mean_final_context_tokens": round(sum(tokens) / len(tokens))}


def cpu_ms(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Median process CPU milliseconds of ``fn()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def decode_step_ms(agent: TransformersAgent, prompts: list[str]) -> float:
    """CPU milliseconds of one decoding step for ``prompts``: a full call minus a one-token call, per extra step.

    The prompts are cached first, so both calls prefill one token; the per-call work (tokenising,
    cache copies) is in both and drops out.
    """
    agent.complete(prompts, max_new_tokens=1, stop=())
    first = cpu_ms(lambda: agent.complete(prompts, max_new_tokens=1, stop=()))
    per_step = []
    for _ in range(3):
        start = time.process_time()
        steps = max(c.completion_tokens for c in agent.complete(prompts, stop=()))
        per_step.append(((time.process_time() - start) * 1000 - first) / max(steps - 1, 1))
    return statistics.median(per_step)


def prompt_work_ms(agent: TransformersAgent, episodes: list[Ended], batch: int) -> float:
    """CPU milliseconds per episode of the agent's prompt work alone: the episodes' prompts replayed
    step by step with one new token each, ``batch`` episodes side by side, from an empty prefix cache."""
    agent.clear_cache()
    start = time.process_time()
    for first in range(0, len(episodes), batch):
        group = episodes[first : first + batch]
        for step in range(max(len(e.prompts) for e in group)):
            agent.complete([e.prompts[step] for e in group if step < len(e.prompts)], max_new_tokens=1, stop=())
    return (time.process_time() - start) * 1000 / len(episodes)


def breakdown(agent: TransformersAgent, ended: list[Ended], cfg: BenchConfig) -> dict:
    """Where an episode's CPU goes, at batch 1 and at ``batch_size``, measured on ``batch_size`` episodes of this run.

    ``prompt_work_ms``: the agent's prompt work per episode (:func:`prompt_work_ms`).
    ``prompt_pass_ms``: one forward pass over an episode's last prompt alone (median): the arithmetic
    that any exact reuse of earlier steps must still do. ``decode_step_ms``: one decoding step
    (:func:`decode_step_ms`, copies of one last prompt).
    """
    import torch

    episodes = ended[: cfg.batch_size]
    with torch.inference_mode():
        passes = [cpu_ms(lambda x=agent.tokenizer(e.prompts[-1], return_tensors="pt")["input_ids"]:
                         agent.model(input_ids=x, logits_to_keep=1), repeats=1) for e in episodes]
    batches = (1, cfg.batch_size)
    return {"prompt_work_ms": {str(b): round(prompt_work_ms(agent, episodes, b), 3) for b in batches},
            "prompt_pass_ms": round(statistics.median(passes), 3),
            "decode_step_ms": {str(b): round(decode_step_ms(agent, episodes[0].prompts[-1:] * b), 3) for b in batches},
            "decode_context_tokens": len(agent.tokenizer(episodes[0].prompts[-1])["input_ids"])}


def build_agents(cfg: BenchConfig, folder: Path) -> dict[str, dict[str, TransformersAgent]]:
    """Per policy, an agent per mode: one model, two prefix caches."""
    path = make_tiny_policy(folder, training_texts(), n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head,
                             n_kv_head=cfg.n_kv_head, seed=cfg.seed)
    agents = {}
    for policy in cfg.policies.split(","):
        first = TransformersAgent(path, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, batch_size=cfg.batch_size)
        if policy == "scripted":
            script_model(first.model, first.tokenizer, SCRIPT)
        elif policy != "random":
            raise ValueError(f"expected policies from 'random', 'scripted', actual {policy!r}")
        second = TransformersAgent(first.model, first.tokenizer, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                                   batch_size=cfg.batch_size)
        agents[policy] = {"batched": first, "sequential": second}
    return agents


def speedups(results: list[dict], key: str) -> dict[str, float]:
    """Batched over sequential throughput, per policy."""
    speed = {(r["policy"], r["mode"]): r[key] for r in results}
    return {p: round(speed[p, "batched"] / speed[p, "sequential"], 2) for p, mode in speed if mode == "batched"}


def provenance(cfg: BenchConfig) -> dict:
    import torch
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    return {"command": "python benchmarks/agent_bench.py " + " ".join(sys.argv[1:]), "config": asdict(cfg),
            "git_commit": commit, "versions": {"swirl_env": swirl_env.__version__, "swirl_agents": swirl_agents.__version__,
                                               "torch": torch.__version__, "transformers": transformers.__version__,
                                               "python": platform.python_version()},
            "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform()}}


def cost_lines(report: dict) -> list[str]:
    """Markdown: where an episode's CPU goes in each mode, a table and a sentence per policy."""
    b = str(report["config"]["batch_size"])
    lines = [f"| policy | CPU ms per episode: sequential / batched | prompt work per episode: batch 1 / {b} | "
             f"one pass over the last prompt | decoding step: batch 1 / {b} (context tokens) |",
             "|---|---|---|---|---|"]
    notes = []
    for policy, f in report["breakdown"].items():
        ms = {r["mode"]: 1000 / r["episodes_per_cpu_s"] for r in report["results"] if r["policy"] == policy}
        work, step = f["prompt_work_ms"], f["decode_step_ms"]
        lines.append(f"| {policy} | {ms['sequential']:.1f} / {ms['batched']:.1f} | {work['1']:.1f} / {work[b]:.1f} | "
                     f"{f['prompt_pass_ms']:.1f} | {step['1']:.2f} / {step[b]:.2f} ({f['decode_context_tokens']}) |")
        notes.append(f"`{policy}`: prompt work is {work[b]:.0f} of the {ms['batched']:.0f} ms of a batched episode "
                     f"and shrinks {work['1'] / work[b]:.1f}x with batching; a decoding step for {b} rows costs "
                     f"{step[b]:.2f} ms against {b} x {step['1']:.2f} ms one at a time "
                     f"({int(b) * step['1'] / step[b]:.1f}x).")
    return lines + [""] + notes


def write_markdown(report: dict, path: Path) -> None:
    cfg, machine = report["config"], report["machine"]
    lines = ["# Agent benchmarks: batched generation", "",
             f"`{report['command']}` (commit `{report['git_commit'][:10] or 'unknown'}`, "
             f"{machine['cpus']} CPUs, {machine['torch_threads']} torch threads, 1-minute load average "
             f"{report['load_average_1min']['start']:.1f} at the start of the run and "
             f"{report['load_average_1min']['end']:.1f} at its end)", "",
             f"Tiny Llama ({cfg['n_layer']} layers, hidden {cfg['n_embd']}, {cfg['n_head']} attention heads sharing "
             f"{cfg['n_kv_head']} key/value head{'s' * (cfg['n_kv_head'] > 1)}), `{cfg['env_id']}`, max "
             f"{cfg['max_new_tokens']} new tokens per step, batch {cfg['batch_size']}. The two modes run "
             f"interleaved in one process, each turn going to the one that has used less wall time: "
             f"`sequential` plays {cfg['episodes']} episodes, `batched` as many lockstep chunks as fit "
             f"in the same time.", "",
             "| policy | mode | episodes | episodes/s | generated tokens/s | seconds | episodes per CPU-second | "
             "final context (chars / tokens) |", "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['policy']} | {r['mode']} | {r['episodes']} | {r['episodes_per_s']:.2f} | "
                     f"{r['generated_tokens_per_s']:.0f} | {r['seconds']:.1f} | {r['episodes_per_cpu_s']:.2f} | "
                     f"{r['mean_final_context_chars']} / {r['mean_final_context_tokens']} |")
    lines += ["", "Speed-up of batched over sequential (wall clock): " +
              ", ".join(f"{p} {s:.1f}x" for p, s in report["speedup"].items()),
              "Speed-up in episodes per CPU-second (less sensitive to other load on a shared machine): " +
              ", ".join(f"{p} {s:.1f}x" for p, s in report["speedup_cpu"].items()), "",
              "## Where the time goes", "", *cost_lines(report), "", WHY, ""]
    path.write_text("\n".join(lines))


WHY = """Prompt work is each step's prompt through the agent with one new token (tokenising the
whole context, prefilling what the prefix cache lacks, copying cached keys), the episodes' recorded
prompts replayed from an empty cache; one pass over the last prompt is the arithmetic any exact
reuse of earlier steps must still do. Both modes run the same code: the prefix cache (each step
prefills only the tokens after its longest common token prefix with the step before, and a new
episode reuses the instructions it shares with earlier ones), one decoding loop with a vectorised
stop-string check, inverse-CDF sampling. Batching shares what a forward pass costs whatever its
batch: Python and dispatch in every layer, most of a batch-1 decoding step for a model this small.
On a CPU it cannot share arithmetic that grows with the rows. A batched decoding step still reads
every row's keys and values (memory-bound) and computes every row's logits and sample: with grouped-
query attention, as in the models users run, the bytes read per row scale with the key/value heads,
not the query heads (`--n-kv-head 4` measures one key/value head per query head). A padded prompt
pass does the same arithmetic as its rows one by one, so prompt work shrinks only by the passes'
fixed cost: it bounds `scripted` (five paragraphs appended per step, steps of a few tokens), where
even prompt work at the one-pass floor would leave batching under 8x. `random` re-prefills the steps
it wrote: random tokens are not the tokenizer's own segmentation of their text, so a step re-
tokenises differently from the tokens that wrote it and only the previous prompt is reused. On a GPU
the rows of a forward pass run in parallel and neither bound applies; no GPU was available to this
run."""


# --- a real pretrained model: each mode in a process of its own -----------------------------------


def play_model(cfg: BenchConfig, mode: str) -> dict:
    """The pretrained model plays ``cfg.episodes`` episodes greedily, ``batched`` or ``sequential`` (batch 1)."""
    agent = TransformersAgent(cfg.model, max_new_tokens=cfg.max_new_tokens, do_sample=False, seed=cfg.seed,
                              batch_size=cfg.batch_size)
    agent.act_batch([ctx.render_start("Warm up.", "Who?")] * 2)  # not timed
    agent.clear_cache()
    seeds = list(range(cfg.seed, cfg.seed + cfg.episodes))
    run = (play_batched(agent, [gym.make(cfg.env_id) for _ in range(cfg.batch_size)], seeds) if mode == "batched"
           else play_sequential(agent, gym.make(cfg.env_id), seeds))
    clock = Clock()
    while len(clock.ended) < len(seeds) and clock.advance(run):
        pass
    row = summarise(cfg.model, mode, clock, agent.tokenizer)
    return {**row, "finals": {e.seed: e.final for e in clock.ended}, "mean_steps": round(
        sum(len(e.prompts) for e in clock.ended) / len(clock.ended), 2)}


def measure_model(cfg: BenchConfig, argv: list[str]) -> dict:
    """Both modes, each in a process of its own (peak memory per mode), and how many episodes they agree on."""
    if cfg.episodes % cfg.batch_size:
        raise ValueError(f"expected --episodes a multiple of --batch-size ({cfg.batch_size}), actual {cfg.episodes}: "
                         "the batched mode plays whole lockstep chunks")
    load_start, results = os.getloadavg()[0], []
    for mode in ("batched", "sequential"):
        results.append(run_isolated([str(Path(__file__).resolve()), *argv, "--run", mode]))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "finals"}), flush=True)
    batched, sequential = (r.pop("finals") for r in results)
    load = {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)}
    return {**provenance(cfg), "load_average_1min": load, "results": results,
            "identical_episodes": sum(batched[s] == sequential.get(s) for s in batched),
            "speedup": {key: round(results[0][key] / results[1][key], 2) for key in
                        ("episodes_per_s", "generated_tokens_per_s", "episodes_per_cpu_s")}}


def write_model_markdown(record: dict, path: Path) -> None:
    cfg, machine = record["config"], record["machine"]
    note = model_note(cfg["model"])
    lines = [f"# Agent benchmarks: batched generation with {cfg['model']}", "",
             f"`{record['command']}` (commit `{record['git_commit'][:10] or 'unknown'}`, {machine['cpus']} CPUs, "
             f"{machine['torch_threads']} torch threads, 1-minute load average {record['load_average_1min']['start']:.1f} "
             f"at the start of the run and {record['load_average_1min']['end']:.1f} at its end)", "",
             f"{cfg['model']}{f' ({note})' if note else ''}, greedy, `{cfg['env_id']}` seeds {cfg['seed']} to "
             f"{cfg['seed'] + cfg['episodes'] - 1}, max {cfg['max_new_tokens']} new tokens per step. `batched`: "
             f"{cfg['batch_size']} episodes in lockstep, one generate call per step; `sequential`: one episode after "
             "another at batch 1. Both keep the prefix KV cache. Each mode runs in a process of its own: seconds and "
             "CPU seconds are the episodes' alone; process columns include loading the model; peak RSS is the "
             "process's.", "",
             "| mode | episodes | mean steps | episodes/s | generated tokens/s | seconds | CPU seconds | "
             "episodes per CPU-second | process s (wall / CPU) | peak RSS MB | final context tokens |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["results"]:
        proc = r["process"]
        lines.append(f"| {r['mode']} | {r['episodes']} | {r['mean_steps']} | {r['episodes_per_s']:.3f} | "
                     f"{r['generated_tokens_per_s']:.1f} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
                     f"{r['episodes_per_cpu_s']:.3f} | {proc['wall_seconds']:.0f} / {proc['cpu_seconds']:.0f} | "
                     f"{proc['peak_rss_mb']:.0f} | {r['mean_final_context_tokens']} |")
    speed = record["speedup"]
    lines += ["", f"Batched over sequential: {speed['episodes_per_s']:.1f}x episodes/s, "
              f"{speed['generated_tokens_per_s']:.1f}x generated tokens/s, {speed['episodes_per_cpu_s']:.1f}x episodes "
              f"per CPU-second. Episodes identical in both modes: {record['identical_episodes']} of {cfg['episodes']} "
              "(greedy decoding; padding in a batch can flip a near-tie).", ""]
    path.write_text("\n".join(lines))


# --- driver --------------------------------------------------------------------------------------


def parse_config(argv: list[str] | None) -> tuple[BenchConfig, str | None]:
    """The config from the command line (unset episodes resolved), and the mode a child process is to play."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(BenchConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    parser.add_argument("--run", choices=("batched", "sequential"), help=argparse.SUPPRESS)  # a child's one mode
    args = vars(parser.parse_args(argv))
    run = args.pop("run")
    cfg = BenchConfig(**args)
    cfg.episodes = cfg.episodes or (cfg.batch_size if cfg.model else 32)
    return cfg, run


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, run = parse_config(argv)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    if run:
        result = play_model(cfg, run)
        report(result)
        return result
    if cfg.model:
        record = measure_model(cfg, argv)
        name = cfg.name or f"agents_{model_stem(cfg.model)}"
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        write_model_markdown(record, RESULTS / f"{name}.md")
        print(json.dumps({"speedup": record["speedup"], "identical_episodes": record["identical_episodes"]}))
        return record
    return tiny_main(cfg)


def tiny_main(cfg: BenchConfig) -> dict:
    """The tiny model, both policies: the modes interleaved in this process, then where the time goes."""
    results, costs, load_start = [], {}, os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        for policy, agents in build_agents(cfg, Path(folder)).items():
            for agent in agents.values():
                agent.act_batch([ctx.render_start("Warm up.", "Who?")] * 2)
                agent.clear_cache()
            clocks = measure(agents, cfg)
            for mode, clock in clocks.items():
                results.append(summarise(policy, mode, clock, agents[mode].tokenizer))
                print(json.dumps(results[-1]), flush=True)
            costs[policy] = breakdown(agents["sequential"], clocks["sequential"].ended, cfg)
            print(json.dumps({policy: costs[policy]}), flush=True)
    load = {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)}
    record = {**provenance(cfg), "load_average_1min": load, "results": results, "breakdown": costs,
              "speedup": speedups(results, "episodes_per_s"), "speedup_cpu": speedups(results, "episodes_per_cpu_s")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{cfg.name or 'agents'}.json").write_text(json.dumps(record, indent=2) + "\n")
    write_markdown(record, RESULTS / f"{cfg.name or 'agents'}.md")
    print(json.dumps({"speedup": record["speedup"], "speedup_cpu": record["speedup_cpu"]}))
    return record


if __name__ == "__main__":
    main()
