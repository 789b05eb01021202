"""Run a swirl env under verifiers (the environment library behind prime-rl, SkyRL, rLLM and NeMo Gym).

verifiers' Gymnasium adapter (``GymEnv``) plays the env as a chat; :func:`verifiers_env` makes that chat
swirl's own (instructions as the system prompt, the question, each step and its ``<result>``). Any swirl
agent can be the model through :func:`agent_client`; with a served model, pass verifiers' own client
instead (``vf.OpenAIChatCompletionsClient(AsyncOpenAI(base_url=...))``)::

    pip install "verifiers>=0.2.1,<0.4"
    python examples/verifiers_env.py                                   # synthetic maths, no data needed
    python examples/verifiers_env.py --env SwirlGSM8K-v0 --agent reference-noisy --episodes 5
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents.agents.factory import make_agent
from swirl_agents.interop.verifiers import agent_client, verifiers_env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="SwirlSynthMath-v0", help="a swirl env id")
    p.add_argument("--agent", default="reference", help="a swirl agent spec (reference, reference-noisy, openai:URL:MODEL, ...)")
    p.add_argument("--episodes", type=int, default=3, help="rollouts to run (the eval rows of the verifiers env)")
    args = p.parse_args()

    env = verifiers_env(args.env, num_train_episodes=1, num_eval_episodes=args.episodes)
    client = agent_client(make_agent(args.agent, gym.make(args.env)))
    results = env.evaluate_sync(client, model=args.agent, num_examples=args.episodes)
    rewards = []
    for out in results["outputs"]:
        turns = sum(m["role"] == "assistant" for m in out["completion"])
        print(f"seed {out['answer']}: {turns} steps, reward {out['reward']:.1f}, last step {out['completion'][-2]['content'][-60:]!r}")
        rewards.append(out["reward"])
    print(f"{len(rewards)} verifiers rollouts of {args.env}: mean reward {sum(rewards) / len(rewards):.2f}")


if __name__ == "__main__":
    main()
