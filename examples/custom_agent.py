"""Your own agent in swirl's envs: any object with ``act(observation) -> str``, then evaluated and looked at.

    python examples/custom_agent.py
"""

import tempfile
from pathlib import Path

import gymnasium as gym

import swirl_env  # noqa: F401  (registers the Swirl* env ids)
from swirl_agents.evaluate import evaluate
from swirl_agents.show import show
from swirl_env.context import Context


class SearchThenAnswer:
    """Searches for the question, then answers with the title of the best match: one good step, one poor one."""

    name = "search-then-answer"  # recorded as the agent id in episode files

    def act(self, observation: str) -> str:
        context = Context.parse(observation)  # the one parser of a context: question, steps, tool results
        if not context.steps:
            return f"I should look this up. <search_query>{context.question}</search_query>"
        best = context.steps[-1].result.split(":", 1)[0]  # results are "title: text" paragraphs
        return f"The best match is {best}. <answer>{best}</answer>"


# One step by hand: the observation is the whole context as one string.
env, agent = gym.make("SwirlSynthQA-v0", top_k=2), SearchThenAnswer()
obs, info = env.reset(options={"question_index": 0})
print(agent.act(obs))

# Evaluation on held-out questions: accuracy, and the share of its steps the reference judge calls GOOD.
out = Path(tempfile.mkdtemp()) / "episodes.jsonl"
result = evaluate("SwirlSynthQA-v0", agent, out=out, split="test", num_questions=40, env_kwargs={"top_k": 2},
                  progress=False)
print(f"accuracy {result.accuracy:.3f}, process label accuracy {result.process_label_accuracy:.3f} "
      f"over {result.episodes} episodes")

# The first episode, step by step (no judgments file beside it: evaluate keeps its judgments in the result).
print(show(out, max_chars=200))
