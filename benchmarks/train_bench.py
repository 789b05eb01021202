"""Training throughput: packed episodes vs one sequence per sub-trajectory vs TRL's SFTTrainer.

Every method trains one epoch over the same transitions (QA episodes of K actions built from real
HotpotQA questions and paragraphs: K - 1 searches whose results are the question's paragraphs, then
the answer) with the same model and AdamW:

- ``packed``: swirl's trainer layout, one row per episode, rows length-sorted into micro-batches
  of at most ``--budget`` padded tokens;
- ``naive_padded``: one row per sub-trajectory (prompt_i + action_i), micro-batches filled in data
  order under the same budget, padded to their longest row;
- ``naive_bucketed``: one row per sub-trajectory, length-sorted (``TrainConfig(packed=False)``);
- ``trl_sft``: TRL's ``SFTTrainer`` on a prompt-completion dataset (one row per sub-trajectory,
  the prompt rendered as swirl renders it, ``completion_only_loss=True``), the batch size giving
  about the same tokens per batch.

``tokens/s`` = unique episode tokens (the tokens of each episode's full packed sequence, the same
number for every method) / epoch seconds: the rate at which the *data* is consumed. Action
tokens/s (trained tokens) is proportional to it. ``processed tokens/s`` counts what each method
actually runs through the model (padding included), i.e. hardware throughput.

Every (K, method, round) runs in a process of its own (:func:`machine.run_isolated`), so the peak
resident memory reported is that method's alone (model, optimizer state, activations and whatever
the method imports); CPU seconds stand beside wall seconds (on shared cores load stretches wall
time far more than CPU time). Epoch seconds are the sum over steps of each step's fastest time
over the rounds (a warm-up step before each epoch is not timed).

Tiny model (``results/train``: a 4-layer Llama built from a config, float32, and a
BPE tokenizer fitted on the episodes)::

    python benchmarks/train_bench.py

A real pretrained model with its own tokenizer; prompts go through its chat template exactly as the
trainer renders them (:func:`swirl_agents.prompting.encode_prompt`). With ``--model`` the defaults
are ``--ks 5 --episodes 4 --rounds 1 --paragraphs 2 --paragraph-chars 200 --budget 2048``: about
3,000 unique episode tokens, 9,100 as sub-trajectories, some 40,000 through the model over the four
methods, roughly 10-15 minutes on 2 quiet CPU cores for SmolLM2-135M-Instruct (results ``train_smollm2``)::

    python benchmarks/train_bench.py --model smollm2-135m-instruct

GPU (tokens/s and MFU of a ~0.5B Qwen2-shaped model built from a config, bf16)::

    python benchmarks/train_bench.py --gpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import model_stem, report, run_isolated  # noqa: E402

from swirl_agents.episodes import Episode, Step, Transition, decompose  # noqa: E402
from swirl_agents.prompting import render_prompt, text_for_model  # noqa: E402
from swirl_agents.runinfo import versions  # noqa: E402
from swirl_agents.tiny import train_tokenizer  # noqa: E402
from swirl_agents.training import TrainConfig  # noqa: E402
from swirl_agents.training.data import PackedSequence, collate, make_batches, pack_transitions  # noqa: E402
from swirl_agents.training.trainer import optimize_step  # noqa: E402
from swirl_agents.zoo import model_note  # noqa: E402
from swirl_env import context as ctx  # noqa: E402
from swirl_env.data.hotpotqa import read_hotpotqa  # noqa: E402
from swirl_env.data.types import Question  # noqa: E402
from swirl_env.data.paths import data_dir  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
METHODS = ("packed", "naive_padded", "naive_bucketed", "trl_sft")
DEFAULTS = {"ks": [5, 10], "episodes": 6, "rounds": 3, "paragraphs": 3, "paragraph_chars": 0, "budget": 16384}
MODEL_DEFAULTS = {"ks": [5], "episodes": 4, "rounds": 1, "paragraphs": 2, "paragraph_chars": 200, "budget": 2048}
"""With ``--model``: a 135M-parameter model trains some 50-100 tokens a second on two CPU cores."""


# --- data ----------------------------------------------------------------------------------------


def qa_episodes(n: int, k: int, paragraphs: int, chars: int = 0) -> list[Episode]:
    """``n`` episodes of ``k`` actions on the first ``n`` HotpotQA dev questions (:func:`qa_episode`)."""
    instructions = ctx.instructions(("search_query",), k)
    questions = read_hotpotqa(data_dir() / "hotpotqa/hotpot_dev_distractor_subset.json.gz", limit=n)
    return [qa_episode(q, k, paragraphs, chars, instructions) for q in questions]


def qa_episode(q: Question, k: int, paragraphs: int, chars: int, instructions: str) -> Episode:
    """k-1 searches, each shown ``paragraphs`` of the question's real paragraphs (cut to ``chars``, 0: whole), then
    the gold answer."""
    texts = [f"{p.title}: {p.text}"[: chars or None] for p in q.paragraphs]
    steps = []
    for i in range(k - 1):
        title = q.paragraphs[i % len(q.paragraphs)].title
        shown = "\n\n".join(texts[(i + j) % len(texts)] for j in range(paragraphs))
        steps.append(Step(f"I still need facts about {title}. <search_query>{title}</search_query>", "search_query",
                          title, shown))
    answer = q.answers[0]
    steps.append(Step(f"The paragraphs answer it. <answer>{answer}</answer>", "answer", answer, None, reward=1.0))
    return Episode(f"{q.id}-k{k}", q.id, "SwirlHotpot-v0", "train_bench", 0, q.question, instructions, tuple(steps),
                   answer, {"exact_match": 1.0}, 1.0, True, False, gold_answers=tuple(q.answers))


def data_order_batches(rows: list[PackedSequence], budget: int) -> list[list[int]]:
    """Micro-batches in data order under a padded-token budget (what a plain DataLoader would give)."""
    batches, current, longest = [], [], 0
    for i, row in enumerate(rows):
        if current and (len(current) + 1) * max(longest, len(row)) > budget:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, len(row))
    return batches + ([current] if current else [])


# --- methods -------------------------------------------------------------------------------------


def run_swirl(model, tokenizer, rows, batches, device: str, mixed_precision: str = "no") -> dict:
    """One epoch of swirl's optimizer step over ``batches``; returns each step's wall and CPU seconds."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=device == "cpu", mixed_precision=mixed_precision)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model, optimizer = acc.prepare(model.to(acc.device).train(), optimizer)
    config = TrainConfig(output_dir="unused")
    micro = [[{k: v.to(acc.device) if torch.is_tensor(v) else v
               for k, v in collate([rows[i] for i in b], tokenizer.pad_token_id).items()}] for b in batches]
    optimize_step(acc, model, None, optimizer, micro[0], config)  # warm-up, not timed
    timer = StepTimes(device)
    for m in micro:
        timer.start()
        optimize_step(acc, model, None, optimizer, m, config)
        timer.stop()
    return {**timer.as_dict(), "processed_tokens": sum(int(m[0]["input_ids"].numel()) for m in micro),
            "micro_batches": len(micro)}


def run_trl(model, tokenizer, transitions: list[Transition], batch_size: int, device: str) -> dict:
    """One epoch of TRL SFTTrainer on (prompt, completion) rows, one per sub-trajectory."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class Timer(TrainerCallback):
        """Times every optimizer step (forward, backward, update), as run_swirl times its own."""

        def __init__(self):
            self.times = StepTimes(device)

        def on_step_begin(self, args, state, control, **kwargs):
            self.times.start()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.stop()

    # The prompt as the trainer renders it (chat template and all) and the step as the model sees it.
    data = Dataset.from_list([{"prompt": render_prompt(tokenizer, t.context()),
                               "completion": text_for_model(tokenizer, ctx.escape(t.action))} for t in transitions])
    args = SFTConfig(output_dir=str(RESULTS / "tmp" / "trl"), per_device_train_batch_size=batch_size,
                     num_train_epochs=1, learning_rate=1e-5, completion_only_loss=True, max_length=None,
                     report_to="none", save_strategy="no", logging_steps=10_000, use_cpu=device == "cpu",
                     bf16=device != "cpu", dataloader_num_workers=0, disable_tqdm=True, seed=0)
    timer = Timer()
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[timer])
    output = trainer.train()
    return {**timer.times.as_dict(), "train_runtime": float(output.metrics["train_runtime"]), "batch_size": batch_size}


class StepTimes:
    """Wall and CPU (this process, all threads) seconds of each timed step."""

    def __init__(self, device: str):
        self.device, self.wall, self.cpu = device, [], []
        self._wall = self._cpu = 0.0

    def start(self) -> None:
        _sync(self.device)
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        _sync(self.device)
        self.wall.append(time.perf_counter() - self._wall)
        self.cpu.append(time.process_time() - self._cpu)

    def as_dict(self) -> dict:
        return {"step_seconds": self.wall, "step_cpu_seconds": self.cpu}


def _sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


# --- models --------------------------------------------------------------------------------------


def load(args, episodes: list[Episode]):
    """``(model, tokenizer)``: the pretrained ``--model`` with its own tokenizer, else a model built from a config
    (seeded) with a tokenizer fitted on the episodes."""
    if args.model:
        from swirl_agents.agents.hf import load_model

        model, tokenizer, _ = load_model(args.model, device="cpu", dtype=torch.float32)
        return model, tokenizer
    tokenizer = train_tokenizer([ep.final_context() for ep in episodes], vocab_size=args.vocab)
    torch.manual_seed(0)
    return (gpu_model(tokenizer) if args.gpu else cpu_model(tokenizer, args.layers, args.hidden)), tokenizer


def cpu_model(tokenizer, layers: int, hidden: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
        num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64, max_position_embeddings=16384,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id))


def gpu_model(tokenizer):
    """A Qwen2-0.5B-shaped model (24 layers, hidden 896, GQA 14/2, vocab 151,936) from a config, random weights."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return Qwen2ForCausalLM(Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa"))


def flops_per_token(model, seq_len: float) -> float:
    """Training FLOPs per token: 6 x non-embedding parameters (+ LM head) + 12 x layers x hidden x seq_len (attention)."""
    cfg = model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    params += cfg.vocab_size * cfg.hidden_size if cfg.tie_word_embeddings else 0
    return 6 * params + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len


# --- one method, in its own process --------------------------------------------------------------


def run_method(k: int, method: str, args) -> dict:
    """One epoch of ``method`` on the K-action episodes, with the data's token counts (the same for every method)."""
    device = "cuda" if args.gpu else "cpu"
    episodes = qa_episodes(args.episodes, k, args.paragraphs, args.paragraph_chars)
    transitions = [t for ep in episodes for t in decompose(ep)]
    model, tokenizer = load(args, episodes)
    max_len = model.config.max_position_embeddings
    packed, stats = pack_transitions(tokenizer, transitions, max_len=max_len)
    data = {"episodes": len(episodes), "transitions": len(transitions), "unique_episode_tokens": stats.tokens,
            "action_tokens": stats.action_tokens, "naive_tokens": stats.naive_tokens,
            "fallback_episodes": stats.fallback_episodes, "actions_truncated": stats.actions_truncated}
    if method == "trl_sft":
        batch_size = max(1, round(args.budget / (stats.naive_tokens / len(transitions)) / 1.5))
        result = run_trl(model, tokenizer, transitions, batch_size, device)
    else:
        rows = packed if method == "packed" else pack_transitions(tokenizer, transitions, max_len=max_len, packed=False)[0]
        lengths = [len(r) for r in rows]
        batches = data_order_batches(rows, args.budget) if method == "naive_padded" else make_batches(lengths, args.budget)
        result = run_swirl(model, tokenizer, rows, batches, device, "bf16" if args.gpu else "no")
    if args.gpu:
        result["flops_per_token"] = flops_per_token(model, stats.tokens / len(episodes))
    result["device"] = torch.cuda.get_device_name() if args.gpu else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {"data": data, **result}


# --- driver --------------------------------------------------------------------------------------


def bench_k(k: int, args, argv: list[str]) -> dict:
    """Every method on the K-action episodes: ``args.rounds`` rounds, the methods interleaved in each, every run
    in a process of its own. Each step's fastest time over the rounds is kept: the cores are shared and load from
    other processes comes and goes, so the minimum is the least disturbed."""
    out: dict = {"k": k, "methods": {}}
    steps: dict[str, list[dict]] = {}
    for round_ in range(args.rounds):
        for name in METHODS:
            if name in args.skip:
                continue
            r = run_isolated([str(Path(__file__).resolve()), *argv, "--run", str(k), name])
            data, out["device"] = r.pop("data"), r.pop("device")
            if out.setdefault("data", data) != data:
                raise RuntimeError(f"expected every method to see the same data, actual {out['data']} and {data} ({name})")
            steps.setdefault(name, []).append({key: r.pop(key) for key in ("step_seconds", "step_cpu_seconds", "process")})
            out["methods"][name] = _rates(r, steps[name], data)
            print(f"K={k} round {round_} {name}: {out['methods'][name]}", flush=True)
    m = out["methods"]
    peak = next((v for key, v in PEAK_BF16_FLOPS.items() if key in out.get("device", "")), None)
    for v in m.values():
        if "processed_tokens" in v and "flops_per_token" in v and peak:
            v["mfu"] = v["processed_tokens"] / v["seconds"] * v["flops_per_token"] / peak
    if "packed" in m:
        out["speedup"] = {name: m["packed"]["tokens_per_s"] / v["tokens_per_s"] for name, v in m.items() if name != "packed"}
    return out


def _rates(r: dict, rounds: list[dict], data: dict) -> dict:
    """Epoch seconds (wall and CPU: each step's fastest over the rounds), rates, and the processes' peak memory."""
    r = dict(r)
    r["seconds"] = sum(min(times) for times in zip(*(x["step_seconds"] for x in rounds)))
    r["cpu_seconds"] = sum(min(times) for times in zip(*(x["step_cpu_seconds"] for x in rounds)))
    r["peak_rss_mb"] = max(x["process"]["peak_rss_mb"] for x in rounds)
    r["processes"] = [x["process"] for x in rounds]
    r["tokens_per_s"] = data["unique_episode_tokens"] / r["seconds"]
    r["action_tokens_per_s"] = data["action_tokens"] / r["seconds"]
    if "processed_tokens" in r:
        r["processed_tokens_per_s"] = r["processed_tokens"] / r["seconds"]
    return r


def write_results(results: dict, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    lines = [f"# Training throughput ({results['device']})", "", f"Command: `{results['command']}` "
             f"(commit `{results['versions']['git_commit'][:10]}`)", "",
             f"Model: {results['model']}. tokens/s = unique episode tokens / epoch seconds (same numerator for all).",
             f"Load average at start / end: {results['load_start']:.1f} / {results['load_end']:.1f} (shared CPU cores); "
             f"epoch s = sum over steps of each step's fastest time in {results['rounds']} interleaved epochs; "
             "CPU s likewise (process CPU time, all threads); peak RSS = the method's process (one per method and round).",
             "", "| K | episodes | transitions | unique tokens | action tokens | naive tokens | episodes not packable |",
             "|---|---|---|---|---|---|---|"]
    for res in results["runs"]:
        d = res["data"]
        lines.append(f"| {res['k']} | {d['episodes']} | {d['transitions']} | {d['unique_episode_tokens']} | "
                     f"{d['action_tokens']} | {d['naive_tokens']} | {d['fallback_episodes']} |")
    lines += ["", "| K | method | epoch s | CPU s | tokens/s | action tokens/s | processed tokens/s | peak RSS MB | "
              "packed speed-up |", "|---|---|---|---|---|---|---|---|---|"]
    for res in results["runs"]:
        for method, m in res["methods"].items():
            speedup = res.get("speedup", {}).get(method)
            lines.append(f"| {res['k']} | {method} | {m['seconds']:.1f} | {m['cpu_seconds']:.1f} | "
                         f"{m['tokens_per_s']:.0f} | {m['action_tokens_per_s']:.0f} | "
                         f"{m.get('processed_tokens_per_s', float('nan')):.0f} | {m['peak_rss_mb']:.0f} | "
                         f"{'%.2fx' % speedup if speedup else '-'} |" + (f" MFU {m['mfu']:.1%} |" if "mfu" in m else ""))
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", action="store_true", help="CUDA, bf16; without --model a ~0.5B Qwen2-shaped model; reports MFU")
    p.add_argument("--model", default="", help="a pretrained model (named, .gguf, folder or hub id) and its tokenizer "
                                               "instead of a model built from a config")
    p.add_argument("--ks", type=int, nargs="+", help="actions per episode (default 5 10; with --model 5)")
    p.add_argument("--episodes", type=int, help="episodes per K (default 6; with --model 4)")
    p.add_argument("--rounds", type=int, help="epochs per method, interleaved; each step's fastest is kept "
                                              "(default 3; with --model 1)")
    p.add_argument("--paragraphs", type=int, help="paragraphs per search result (default 3; with --model 2)")
    p.add_argument("--paragraph-chars", type=int, help="cut each paragraph to this many characters, 0: whole "
                                                       "(default 0; with --model 200)")
    p.add_argument("--layers", type=int, default=4, help="tiny model depth (without --model)")
    p.add_argument("--hidden", type=int, default=256, help="tiny model width (without --model)")
    p.add_argument("--vocab", type=int, default=4096, help="fitted tokenizer's vocabulary (without --model)")
    p.add_argument("--budget", type=int, help="padded tokens per micro-batch (default 16384; with --model 2048)")
    p.add_argument("--skip", nargs="*", default=[], choices=METHODS, help="methods to leave out")
    p.add_argument("--name", default=None, help="results file stem (default train, train_gpu, train_smollm2 for "
                                                "--model smollm2-135m-instruct)")
    p.add_argument("--run", nargs=2, metavar=("K", "METHOD"), help=argparse.SUPPRESS)  # one method, in a child process
    args = p.parse_args(argv)
    for key, value in (MODEL_DEFAULTS if args.model else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.run:
        report(run_method(int(args.run[0]), args.run[1], args))
        return
    if args.gpu and not torch.cuda.is_available():
        sys.exit("--gpu needs a CUDA device: torch.cuda.is_available() is False")
    name = args.name or "train" + (f"_{model_stem(args.model)}" if args.model else "") + ("_gpu" if args.gpu else "")
    if args.model:
        model = f"{args.model} ({model_note(args.model) or 'pretrained'}), its own tokenizer and chat template, " + \
                ("bf16 autocast" if args.gpu else "float32")
    else:
        model = "Qwen2-0.5B shape, bf16 autocast" if args.gpu else \
            f"Llama {args.layers} layers, hidden {args.hidden}, vocab {args.vocab}, float32"
    results = {"command": "python benchmarks/train_bench.py " + " ".join(argv), "model": model,
               "config": {k: v for k, v in vars(args).items() if k != "run"}, "versions": versions(),
               "load_start": os.getloadavg()[0], "rounds": args.rounds, "runs": []}
    for k in args.ks:
        results["runs"].append(bench_k(k, args, argv))
    results["device"] = results["runs"][0].get("device", "none")
    results["load_end"] = os.getloadavg()[0]
    write_results(results, name)
    print(json.dumps([{"k": r["k"], "speedup": r.get("speedup")} for r in results["runs"]], indent=1))


if __name__ == "__main__":
    main()
