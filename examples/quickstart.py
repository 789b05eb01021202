"""Record episodes, judge every step, filter them SWiRL's four ways, and look at one: no model, no data files.

    python examples/quickstart.py
"""

import tempfile
from pathlib import Path

import gymnasium as gym

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents.agents.factory import make_agent
from swirl_agents.episodes import decompose, read_episodes
from swirl_agents.filters import filter_transitions
from swirl_agents.judges import judge_episodes, make_judge, process_label_accuracy, write_judgments
from swirl_agents.rollout import generate_episodes
from swirl_agents.show import show

env = gym.make("SwirlSynthQA-v0", top_k=2)  # the built-in world; "SwirlHotpot-v0" reads HotpotQA from $SWIRL_DATA_DIR
out = Path(tempfile.mkdtemp()) / "episodes.jsonl"

# 1. Record: a gold-guided agent that makes a deliberate mistake in 30% of its steps, 2 samples per question.
agent = make_agent("reference", env, mistake_rate=0.3)
print(generate_episodes(env, agent, out=out, num_questions=50, samples_per_question=2, progress=False))
episodes = list(read_episodes(out))

# 2. Judge every step without looking at whether the final answer is right (the gold-guided reference judge;
#    "llm:MODEL" is the paper's LLM judge). Judgments beside the episodes are what `swirl show` displays.
judgments = judge_episodes(episodes, make_judge("reference", envs=[env]))
write_judgments(out.with_name("judgments.jsonl"), judgments)
print(f"\nprocess label accuracy (share of the agent's steps judged GOOD): {process_label_accuracy(judgments):.2f}")

# 3. Decompose: an episode of K steps is K training examples, each the context the agent saw and its action.
longest = max(episodes, key=lambda ep: len(ep.steps))
print(f"episode {longest.episode_id}: {len(longest.steps)} steps -> {len(decompose(longest))} transitions")

# 4. Filter: SWiRL's four data strategies. The paper's best, "process", keeps episodes whose every step is
#    GOOD, wrong final answers included.
for strategy in ("none", "outcome", "process", "process+outcome"):
    _, stats = filter_transitions(episodes, judgments, strategy)
    print(stats)

# 5. Look at an episode with a step the judge called GOOD and one it called BAD (as `swirl show --episode-id ID`).
mixed = next(ep for ep in episodes if {"GOOD", "BAD"} <= {j.label for j in judgments[ep.episode_id]})
print()
print(show(out, episode_ids=[mixed.episode_id], max_chars=300))
