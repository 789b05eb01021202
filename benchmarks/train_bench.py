"""Training throughput: packed episodes vs one sequence per sub-trajectory vs TRL's SFTTrainer.

Every method trains one epoch over the same transitions (QA episodes with K = 5 and K = 10
actions built from real HotpotQA questions and paragraphs) with the same model and AdamW:

- ``packed``: swirl's trainer layout, one row per episode, rows length-sorted into micro-batches
  of at most ``--budget`` padded tokens;
- ``naive_padded``: one row per sub-trajectory (prompt_i + action_i), micro-batches filled in data
  order under the same budget, padded to their longest row;
- ``naive_bucketed``: one row per sub-trajectory, length-sorted (``TrainConfig(packed=False)``);
- ``trl_sft``: TRL's ``SFTTrainer`` on a prompt-completion dataset (one row per sub-trajectory,
  ``completion_only_loss=True``), the batch size giving about the same tokens per batch.

``tokens/s`` = unique episode tokens (the tokens of each episode's full packed sequence, the same
number for every method) / epoch seconds: the rate at which the *data* is consumed. Action
tokens/s (trained tokens) is proportional to it. ``processed tokens/s`` counts what each method
actually runs through the model (padding included), i.e. hardware throughput.

CPU (the committed numbers)::

    python benchmarks/train_bench.py
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

from swirl_agents.episodes import Transition
from swirl_agents.tiny import train_tokenizer
from swirl_agents.training import TrainConfig
from swirl_agents.training.data import PackedSequence, collate, make_batches, pack_transitions
from swirl_agents.training.trainer import optimize_step
from swirl_env import context as ctx
from swirl_env.data.hotpotqa import read_hotpotqa
from swirl_env.data.paths import data_dir

RESULTS = Path(__file__).resolve().parent / "results"
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


# --- data ----------------------------------------------------------------------------------------


def qa_episodes(n: int, k: int, paragraphs: int) -> list[list[Transition]]:
    """``n`` episodes of ``k`` actions: k-1 searches whose results are the question's real paragraphs, then the answer."""
    instructions = ctx.instructions(("search_query",), 5)
    questions = read_hotpotqa(data_dir() / "hotpotqa/hotpot_dev_distractor_subset.json.gz", limit=n)
    episodes = []
    for q in questions:
        paras = [f"{p.title}: {p.text}" for p in q.paragraphs]
        steps = []
        for i in range(k - 1):
            title = q.paragraphs[i % len(q.paragraphs)].title
            shown = [paras[(i + j) % len(paras)] for j in range(paragraphs)]
            steps.append((f"I still need facts about {title}. <search_query>{title}</search_query>", "\n\n".join(shown)))
        steps.append((f"The paragraphs answer it. <answer>{q.answers[0]}</answer>", None))
        state, episode = ctx.render_start(instructions, q.question), []
        for i, (action, result) in enumerate(steps):
            episode.append(Transition(state, action, 1.0, f"{q.id}-k{k}", i))
            state += ctx.render_step(action, result)
        episodes.append(episode)
    return episodes


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


def run_swirl(model_fn, tokenizer, rows, batches, device: str, mixed_precision: str = "no") -> dict:
    """One epoch of swirl's optimizer step over ``batches``; returns seconds and processed tokens."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=device == "cpu", mixed_precision=mixed_precision)
    model = model_fn().to(acc.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model, optimizer = acc.prepare(model, optimizer)
    config = TrainConfig(output_dir="unused")
    micro = [[{k: v.to(acc.device) if torch.is_tensor(v) else v
               for k, v in collate([rows[i] for i in b], tokenizer.pad_token_id).items()}] for b in batches]
    optimize_step(acc, model, None, optimizer, micro[0], config)  # warm-up, not timed
    steps = []
    for m in micro:
        _sync(device)
        start = time.perf_counter()
        optimize_step(acc, model, None, optimizer, m, config)
        _sync(device)
        steps.append(time.perf_counter() - start)
    return {"step_seconds": steps, "processed_tokens": sum(int(m[0]["input_ids"].numel()) for m in micro),
            "micro_batches": len(micro)}


def run_trl(model_fn, tokenizer, transitions: list[Transition], batch_size: int, device: str) -> dict:
    """One epoch of TRL SFTTrainer on (prompt, completion) rows, one per sub-trajectory."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    data = Dataset.from_list([{"prompt": t.state, "completion": t.action} for t in transitions])
    args = SFTConfig(output_dir=str(RESULTS / "tmp" / "trl"), per_device_train_batch_size=batch_size,
                     num_train_epochs=1, learning_rate=1e-5, completion_only_loss=True, max_length=None,
                     report_to="none", save_strategy="no", logging_steps=10_000, use_cpu=device == "cpu",
                     bf16=device != "cpu", dataloader_num_workers=0, disable_tqdm=True, seed=0)
    timer = _StepTimer()
    trainer = SFTTrainer(model=model_fn(), args=args, train_dataset=data, processing_class=tokenizer, callbacks=[timer])
    output = trainer.train()
    return {"step_seconds": timer.seconds, "train_runtime": float(output.metrics["train_runtime"]),
            "batch_size": batch_size}


def _step_timer_class():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Seconds of every optimizer step (forward, backward, update), as run_swirl measures its own."""

        def __init__(self):
            self.seconds: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self._start)

    return StepTimer


def _StepTimer():  # noqa: N802 - a class made on first use, so importing this module does not need transformers
    return _step_timer_class()()


def _sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


# --- models --------------------------------------------------------------------------------------


def cpu_model_fn(tokenizer, layers: int, hidden: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
                         max_position_embeddings=16384, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)

    def make():
        torch.manual_seed(0)
        return LlamaForCausalLM(config)

    return make


def gpu_model_fn(tokenizer):
    """A Qwen2-0.5B-shaped model (24 layers, hidden 896, GQA 14/2, vocab 151,936) from a config, random weights."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa")

    def make():
        torch.manual_seed(0)
        return Qwen2ForCausalLM(config)

    return make


def flops_per_token(model, seq_len: float) -> float:
    """Training FLOPs per token: 6 x non-embedding parameters (+ LM head) + 12 x layers x hidden x seq_len (attention)."""
    cfg = model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    params += cfg.vocab_size * cfg.hidden_size if cfg.tie_word_embeddings else 0
    return 6 * params + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len


# --- driver --------------------------------------------------------------------------------------


def bench_k(k: int, args, device: str) -> dict:
    episodes = qa_episodes(args.episodes, k, args.paragraphs)
    transitions = [t for ep in episodes for t in ep]
    texts = [ep[-1].state + ep[-1].action for ep in episodes]
    tokenizer = train_tokenizer(texts, vocab_size=args.vocab)
    model_fn = gpu_model_fn(tokenizer) if args.gpu else cpu_model_fn(tokenizer, args.layers, args.hidden)
    packed, stats = pack_transitions(tokenizer, transitions, max_len=16384)
    naive, _ = pack_transitions(tokenizer, transitions, max_len=16384, packed=False)
    unique = stats.tokens
    layouts = {"packed": (packed, make_batches([len(r) for r in packed], args.budget)),
               "naive_padded": (naive, data_order_batches(naive, args.budget)),
               "naive_bucketed": (naive, make_batches([len(r) for r in naive], args.budget))}
    out = {"k": k, "episodes": len(episodes), "transitions": len(transitions), "unique_episode_tokens": unique,
           "action_tokens": stats.action_tokens, "naive_tokens": stats.naive_tokens, "methods": {}}
    precision = "bf16" if args.gpu else "no"
    runs = {name: (lambda rows=rows, batches=batches: run_swirl(model_fn, tokenizer, rows, batches, device, precision))
            for name, (rows, batches) in layouts.items()}
    batch_size = max(1, round(args.budget / (stats.naive_tokens / len(transitions)) / 1.5))
    runs["trl_sft"] = lambda: run_trl(model_fn, tokenizer, transitions, batch_size, device)
    # Rounds interleave the methods; each step's fastest time over the rounds is kept. The cores
    # are shared and load from other processes comes and goes: the minimum is the least disturbed.
    steps: dict[str, list[list[float]]] = {}
    for round_ in range(args.rounds):
        for name, run in runs.items():
            if name in args.skip:
                continue
            r = run()
            steps.setdefault(name, []).append(r.pop("step_seconds"))
            r["seconds"] = sum(min(times) for times in zip(*steps[name]))
            out["methods"][name] = _rates(r, unique, stats.action_tokens)
            print(f"K={k} round {round_} {name}: {out['methods'][name]}", flush=True)
    if args.gpu:
        model = model_fn()
        flops = flops_per_token(model, unique / len(episodes))
        peak = next((v for key, v in PEAK_BF16_FLOPS.items() if key in torch.cuda.get_device_name()), None)
        for m in out["methods"].values():
            if "processed_tokens" in m and peak:
                m["mfu"] = m["processed_tokens"] / m["seconds"] * flops / peak
    m = out["methods"]
    if "packed" in m:
        out["speedup"] = {name: m["packed"]["tokens_per_s"] / v["tokens_per_s"] for name, v in m.items() if name != "packed"}
    return out


def _rates(r: dict, unique: int, action_tokens: int) -> dict:
    r = dict(r)
    r["tokens_per_s"] = unique / r["seconds"]
    r["action_tokens_per_s"] = action_tokens / r["seconds"]
    if "processed_tokens" in r:
        r["processed_tokens_per_s"] = r["processed_tokens"] / r["seconds"]
    return r


def write_results(results: dict, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    lines = [f"# Training throughput ({results['device']})", "", f"Command: `{results['command']}`", "",
             f"Model: {results['model']}. tokens/s = unique episode tokens / epoch seconds (same numerator for all).",
             f"Load average at start / end: {results['load_start']:.1f} / {results['load_end']:.1f} (shared CPU cores); "
             f"epoch s = sum over steps of each step's fastest time in {results['rounds']} interleaved epochs.", "",
             "| K | method | epoch s | tokens/s | action tokens/s | processed tokens/s | packed speed-up |",
             "|---|---|---|---|---|---|---|"]
    for res in results["runs"]:
        for method, m in res["methods"].items():
            speedup = res.get("speedup", {}).get(method)
            lines.append(f"| {res['k']} | {method} | {m['seconds']:.1f} | {m['tokens_per_s']:.0f} | "
                         f"{m['action_tokens_per_s']:.0f} | {m.get('processed_tokens_per_s', float('nan')):.0f} | "
                         f"{'%.2fx' % speedup if speedup else '-'} |" + (f" MFU {m['mfu']:.1%} |" if "mfu" in m else ""))
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", action="store_true", help="CUDA, bf16, a ~0.5B Qwen2-shaped model; reports MFU")
    p.add_argument("--ks", type=int, nargs="+", default=[5, 10], help="actions per episode")
    p.add_argument("--episodes", type=int, default=6, help="episodes per K")
    p.add_argument("--rounds", type=int, default=3, help="epochs per method, interleaved; each step's fastest is kept")
    p.add_argument("--paragraphs", type=int, default=3, help="paragraphs per search result")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--budget", type=int, default=16384, help="padded tokens per micro-batch")
    p.add_argument("--skip", nargs="*", default=[], help="methods to leave out")
    p.add_argument("--name", default=None, help="results file stem (default train, or train_gpu)")
    args = p.parse_args()
    device = "cuda" if args.gpu else "cpu"
    if args.gpu and not torch.cuda.is_available():
        sys.exit("--gpu needs a CUDA device: torch.cuda.is_available() is False")
    results = {"command": "python " + " ".join(sys.argv), "device": torch.cuda.get_device_name() if args.gpu else
               f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
               "model": "Qwen2-0.5B shape, bf16 autocast" if args.gpu else
               f"Llama {args.layers} layers, hidden {args.hidden}, vocab {args.vocab}, float32",
               "load_start": os.getloadavg()[0], "rounds": args.rounds, "torch": torch.__version__, "runs": []}
    for k in args.ks:
        results["runs"].append(bench_k(k, args, device))
    results["load_end"] = os.getloadavg()[0]
    write_results(results, args.name or ("train_gpu" if args.gpu else "train"))
    print(json.dumps([{"k": r["k"], "speedup": r.get("speedup")} for r in results["runs"]], indent=1))


if __name__ == "__main__":
    main()
