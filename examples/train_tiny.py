"""Train a tiny policy with step-wise RL on GSM8K episodes, in one process or several.

Episodes replay GSM8K solutions (one calculator call per ``<<expr=value>>`` annotation, then the
answer); every step gets reward 1, as the paper's process filter leaves them. The policy is a
2-layer Llama built from a config with a locally trained tokenizer, so nothing is downloaded::

    python examples/train_tiny.py --output-dir runs/tiny
    torchrun --nproc_per_node 2 examples/train_tiny.py --output-dir runs/tiny2   # 2 processes (CPU: gloo)

The trained model is a Hugging Face folder (``runs/tiny/final``) that
``TransformersAgent("runs/tiny/final")`` runs.
"""

from __future__ import annotations

import argparse
import re

from swirl_agents.episodes import Episode, Step, Transition, decompose
from swirl_agents.tiny import build_tiny_model, train_tokenizer
from swirl_agents.training import TrainConfig, train
from swirl_env import context as ctx
from swirl_env.data.gsm8k import read_gsm8k
from swirl_env.data.paths import data_dir

ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")


def gsm8k_transitions(n_episodes: int) -> list[Transition]:
    """Transitions of ``n_episodes`` GSM8K train problems replayed step by step (reward 1 each)."""
    instructions = ctx.instructions(("math_exp",), 10)
    out = []
    for q in read_gsm8k(data_dir() / "gsm8k/train.jsonl.gz", split="train", limit=n_episodes):
        steps = [(f"{ANNOTATION.sub('', line).strip()} <math_exp>{m.group(1)}</math_exp>", m.group(2))
                 for line in q.solution.splitlines() for m in ANNOTATION.finditer(line)]
        steps.append((f"So the answer is {q.answers[0]}. <answer>{q.answers[0]}</answer>", None))
        episode = Episode(q.id, q.id, "SwirlGSM8K-v0", "replayed solution", 0, q.question, instructions,
                          tuple(Step(action, "", "", result) for action, result in steps), q.answers[0], {}, 1.0,
                          True, False)
        out += decompose(episode, [1.0] * len(steps))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output-dir", default="runs/train_tiny")
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--max-steps", type=int, default=20)
    p.add_argument("--lora-r", type=int, default=0)
    p.add_argument("--grad-accum-steps", type=int, default=1)
    args = p.parse_args()

    transitions = gsm8k_transitions(args.episodes)
    # Every process builds the same tokenizer and model (deterministic); DDP also syncs weights from rank 0.
    tokenizer = train_tokenizer([t.episode.final_context() for t in transitions], vocab_size=1024)
    model = build_tiny_model(tokenizer, n_layer=2, n_embd=64, n_head=4, max_position_embeddings=2048)
    config = TrainConfig(output_dir=args.output_dir, learning_rate=1e-3, max_steps=args.max_steps,
                         max_tokens_per_batch=4096, lora_r=args.lora_r, grad_accum_steps=args.grad_accum_steps,
                         warmup_steps=2, log_every=5, progress=False)
    result = train(config, transitions, model=model, tokenizer=tokenizer)
    print(f"process {result.process_index}/{result.num_processes} done: steps={result.steps} "
          f"final={result.final_model_dir}", flush=True)


if __name__ == "__main__":
    main()
