"""Rollouts on real data: lockstep batches, exact state rebuilds, deterministic resume after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents.agents import reference
from swirl_agents.episodes import read_episodes
from swirl_agents.cli import main
from swirl_agents.rollout import RolloutSummary, episode_seed, generate_episodes
from swirl_agents.agents.base import StepOutput
from swirl_agents.solve import solve
from tests.conftest import require_data

REPO = Path(__file__).resolve().parents[2]
HOTPOT = "hotpotqa/hotpot_dev_distractor_subset.json.gz"
GSM8K = "gsm8k/test.jsonl"


class Recording:
    """Wraps an agent and logs every observation it is shown (shared by its per-sample copies)."""

    def __init__(self, inner, log=None, transform=None):
        self.inner, self.log, self.transform = inner, [] if log is None else log, transform or (lambda s: s)
        self.name = getattr(inner, "name", "recording")

    def with_seed(self, seed):
        return Recording(self.inner.with_seed(seed), self.log, self.transform)

    def step_batch(self, observations):
        out = []
        for observation in observations:
            self.log.append(observation)
            s = self.inner.step(observation)
            out.append(StepOutput(self.transform(s.text), s.meta))
        return out


@pytest.fixture(scope="module")
def hotpot_env():
    require_data(HOTPOT)
    require_data("wikipedia/hotpotqa_paragraphs.jsonl.gz")
    return gym.make("SwirlHotpot-v0")


@pytest.fixture(scope="module")
def gsm8k_env():
    require_data(GSM8K)
    return gym.make("SwirlGSM8K-v0")


def _ids(path):
    return [e.episode_id for e in read_episodes(path)]


@pytest.mark.parametrize("which", ["hotpot", "gsm8k"])
def test_states_rebuild_byte_for_byte_what_the_agent_saw(which, request, tmp_path):
    env = request.getfixturevalue(f"{which}_env")
    cls = reference.ReferenceQAAgent if which == "hotpot" else reference.ReferenceMathAgent
    agent = Recording(cls(env.unwrapped.questions, mistake_rate=0.3, seed=1))
    out = tmp_path / "episodes.jsonl"
    summary = generate_episodes(env, agent, out=out, num_questions=12, samples_per_question=2, batch_size=5,
                                progress=False)
    episodes = list(read_episodes(out))
    assert summary.episodes_written == len(episodes) == 24
    rebuilt = Counter(state for ep in episodes for state in ep.states())
    assert rebuilt == Counter(agent.log)  # every state the agent saw, each exactly once, byte for byte
    for ep in episodes:
        assert ep.instructions == env.unwrapped.instructions and ep.steps
        assert ep.versions["swirl"] and ep.created > 0 and ep.seed == episode_seed(0, ep.question_id, ep.meta["sample"])
        assert all("mistake" in s.meta for s in ep.steps)  # StepOutput.meta annotations are kept
        assert ep.gold_answers and (ep.answer is None) == ep.truncated
    assert summary.tool_calls == sum(s.tool not in ("", "answer") for e in episodes for s in e.steps) > 0
    assert 0.0 < summary.accuracy <= 1.0


def test_episodes_do_not_depend_on_batching(gsm8k_env, tmp_path):
    agent = reference.ReferenceMathAgent(gsm8k_env.unwrapped.questions, mistake_rate=0.5, seed=3)
    runs = []
    for batch_size in (1, 7):
        out = tmp_path / f"b{batch_size}.jsonl"
        generate_episodes(gsm8k_env, agent, out=out, num_questions=8, samples_per_question=2, batch_size=batch_size,
                          tool_workers=1 if batch_size == 1 else 3, progress=False)
        runs.append({e.episode_id: [s.action for s in e.steps] for e in read_episodes(out)})
    assert runs[0] == runs[1]
    # samples of one question differ (their seeds do) for a noisy agent
    assert any(runs[0][f"SwirlGSM8K-v0/{q}/0"] != runs[0][f"SwirlGSM8K-v0/{q}/1"]
               for q in {k.split("/")[1] for k in runs[0]})


def test_malformed_steps_and_truncation(gsm8k_env, tmp_path):
    class Rambler:
        name = "rambler"

        def act(self, observation):
            return "  I am not sure yet.  " + "x" * 3000  # no action, longer than the env's step cap

    out = tmp_path / "e.jsonl"
    summary = generate_episodes(gsm8k_env, Rambler(), out=out, num_questions=2, progress=False)
    cap = gsm8k_env.unwrapped.max_action_chars
    for ep in read_episodes(out):
        assert ep.truncated and not ep.terminated and ep.answer is None and ep.reward == 0.0
        assert len(ep.steps) == gsm8k_env.unwrapped.max_steps
        assert all(s.error and s.tool == "" and s.action.startswith("  I am") and len(s.action) == cap for s in ep.steps)
    assert summary.malformed_steps == 2 * gsm8k_env.unwrapped.max_steps and summary.accuracy == 0.0
    assert "malformed steps" in str(summary)


def test_resume_skips_done_and_repairs_a_torn_line(gsm8k_env, tmp_path):
    agent = reference.ReferenceMathAgent(gsm8k_env.unwrapped.questions)
    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    generate_episodes(gsm8k_env, agent, out=full, num_questions=10, progress=False)
    lines = full.read_text(encoding="utf-8").splitlines(keepends=True)
    part.write_text("".join(lines[:4]) + lines[4][:50], encoding="utf-8")  # a crash mid-write
    summary = generate_episodes(gsm8k_env, agent, out=part, num_questions=10, progress=False)
    assert (summary.episodes_skipped, summary.episodes_written) == (4, 6)
    assert sorted(_ids(part)) == sorted(_ids(full)) and len(set(_ids(part))) == 10


def test_question_selection_errors(gsm8k_env, tmp_path):
    agent = reference.ReferenceMathAgent(gsm8k_env.unwrapped.questions)
    with pytest.raises(KeyError, match="unknown ids"):
        generate_episodes(gsm8k_env, agent, out=tmp_path / "e.jsonl", question_ids=["nope"], progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        generate_episodes(gsm8k_env, agent, out=tmp_path / "e.jsonl", batch_size=0, progress=False)


def _rollout_cmd(out: Path, n: int) -> list[str]:
    return [sys.executable, "-m", "swirl_agents.cli", "generate", "--env", "SwirlHotpot-v0", "SwirlGSM8K-v0",
            "--agent", "reference-noisy", "--num-questions", str(n), "--samples", "1", "--batch-size", "8",
            "--no-progress", "--run-dir", str(out)]


def _count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_midway_then_rerun_gives_the_uninterrupted_set(tmp_path):
    """The acceptance test: kill -9 a real two-env rollout midway, re-run it, compare with a clean run."""
    require_data(HOTPOT)
    require_data(GSM8K)
    n = 500  # per env: 1,000 episodes over real HotpotQA and GSM8K questions (about 10 s per full run)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    clean, killed = tmp_path / "clean" / "episodes.jsonl", tmp_path / "killed" / "episodes.jsonl"
    subprocess.run(_rollout_cmd(clean.parent, n), check=True, env=env, cwd=REPO, capture_output=True, timeout=300)

    proc = subprocess.Popen(_rollout_cmd(killed.parent, n), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while _count_lines(killed) < n // 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written_before = _count_lines(killed)
    assert 0 < written_before < 2 * n, "the kill must land midway for this test to mean anything"
    subprocess.run(_rollout_cmd(killed.parent, n), check=True, env=env, cwd=REPO, capture_output=True, timeout=300)

    clean_ids, resumed_ids = _ids(clean), _ids(killed)
    assert len(clean_ids) == 2 * n and len(set(clean_ids)) == 2 * n
    assert sorted(resumed_ids) == sorted(clean_ids)  # same set, none duplicated
    by_id = {e.episode_id: e for e in read_episodes(clean)}
    for ep in read_episodes(killed):  # and the same episodes, step for step
        assert [s.action for s in ep.steps] == [s.action for s in by_id[ep.episode_id].steps]


def test_cli_runs_two_envs_into_one_file(tmp_path, capsys):
    require_data(GSM8K)
    out = tmp_path / "episodes.jsonl"
    assert main(["generate", "--env", "SwirlGSM8K-v0", "SwirlSynthMath-v0", "--num-questions", "3", "--no-progress",
                 "--run-dir", str(tmp_path)]) == 0
    ids = _ids(out)
    assert len(ids) == 6 and {i.split("/")[0] for i in ids} == {"SwirlGSM8K-v0", "SwirlSynthMath-v0"}
    assert "episodes written" in capsys.readouterr().out
    assert main(["generate", "--env", "SwirlSynthMath-v0", "--agent", "gpt", "--run-dir", str(tmp_path / "x")]) == 2
    assert "openai:URL:MODEL" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_summary_table():
    s = RolloutSummary(10, 2, 0.5, 3.0, 20, 1, 2.0)
    assert s.episodes_per_second == 5.0 and "episodes/s" in str(s) and "0.500" in str(s)


# --- solve ------------------------------------------------------------------------------------


class Scripted:
    """Search for the question's subject, then answer; or never answer."""

    def __init__(self, answer=True):
        self.answer = answer

    def act(self, observation):
        if self.answer and observation.endswith("</result>\n\n"):
            return "The paragraph says so. <answer>Scott Derrickson</answer>"
        return "Look it up. <search_query>Scott Derrickson</search_query>"


def test_solve_free_form_question_without_gold(hotpot_env):
    sol = solve("Which film director was born in Denver in 1966?", Scripted(), env_id="SwirlHotpot-v0")
    assert sol.answered and sol.answer == "Scott Derrickson"
    ep = sol.episode
    assert ep.gold_answers == () and ep.terminated and len(ep.steps) == 2
    assert "Scott Derrickson" in ep.steps[0].result  # the real search tool ran
    assert ep.instructions == hotpot_env.unwrapped.instructions


def test_solve_step_limit_is_an_explicit_no_answer():
    sol = solve("What is the capital of France?", Scripted(answer=False), env_id="SwirlHotpot-v0", max_steps=2)
    assert (sol.answer, sol.answered) == (None, False)
    assert sol.episode.truncated and len(sol.episode.steps) == 2


def test_solve_with_an_env_instance(gsm8k_env):
    q = gsm8k_env.unwrapped.questions[0]
    sol = solve(q.question, reference.ReferenceMathAgent(gsm8k_env.unwrapped.questions), env_id=gsm8k_env)
    assert sol.answered and sol.episode.reward == 1.0 and sol.episode.question_id == q.id
    with pytest.raises(KeyError, match="pass env_id as a string"):
        solve("not a question of this env", reference.ReferenceMathAgent(gsm8k_env.unwrapped.questions), env_id=gsm8k_env)


def test_a_batched_language_model_agent(scripted_model_dir, tmp_path):
    """A real transformers policy through ``act_batch``: one generate call per lockstep step."""
    from swirl_agents.agents.hf import TransformersAgent

    agent = TransformersAgent(scripted_model_dir, max_new_tokens=40, do_sample=False)
    calls = []
    batch = agent.step_batch
    agent.step_batch = lambda obs: calls.append(len(obs)) or batch(obs)
    out = tmp_path / "e.jsonl"
    summary = generate_episodes("SwirlSynthQA-v0", agent, out=out, num_questions=3, env_kwargs={"max_steps": 2},
                                batch_size=3, progress=False)
    assert calls == [3, 3] and summary.tool_calls == 6
    for ep in read_episodes(out):
        assert ep.agent.startswith("transformers:") and ep.truncated and ep.answer is None
        # generation stopped after the first action: the second one the model wrote never reached the env
        assert [s.action for s in ep.steps] == ["Lookup:<search_query>capital city</search_query>"] * 2
        assert all(s.result and s.meta == {} for s in ep.steps)
        # the ids the policy sampled are recorded, with its tokenizer's fingerprint
        assert all(agent.tokenizer.decode(list(s.token_ids)) == s.action and s.tokenizer == agent.fingerprint
                   for s in ep.steps)
