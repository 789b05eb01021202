"""Records that survive: poisoned text is made safe, every bad line names its file, line and field, one writer at a
time, and a step an agent could not write becomes a recorded fault while the run goes on."""

from __future__ import annotations

import json

import pytest

from swirl_agents.agents.base import StepOutput
from swirl_agents.episodes import EpisodeWriter, read_episodes, read_faults, read_transitions
from swirl_agents.jsonl import FileLockedError, RecordError
from swirl_agents.judges import CachedJudge, JudgmentCache, LLMJudge, judge_episodes, read_judgments, write_judgments
from swirl_agents.rollout import generate_episodes

LONE = chr(0xD800)


class Poisoned:
    """An agent whose steps and annotations carry a lone surrogate (from a buggy decoder, say)."""

    name = "poisoned" + LONE

    def step_batch(self, observations):
        return [StepOutput(f"Thinking {LONE} <answer>4{LONE}</answer>", {"note": LONE}) for _ in observations]


def test_a_lone_surrogate_is_written_as_a_replacement_character(tmp_path):
    out = tmp_path / "episodes.jsonl"
    summary = generate_episodes("SwirlSynthMath-v0", Poisoned(), out=out, num_questions=3, progress=False)
    assert summary.episodes_written == 3
    [ep, *_] = read_episodes(out)
    assert "\ufffd" in ep.steps[0].action and ep.steps[0].meta["note"] == "\ufffd" and LONE not in out.read_text()
    assert generate_episodes("SwirlSynthMath-v0", Poisoned(), out=out, num_questions=3, progress=False).episodes_skipped == 3


def test_a_judge_reply_with_a_lone_surrogate_is_cached_and_written(tmp_path):
    class Reply:
        name = "reply"

        def generate(self, prompts, **kw):
            return [f"Fine {LONE}. Verdict: GOOD" for _ in prompts]

    out = tmp_path / "episodes.jsonl"
    generate_episodes("SwirlSynthMath-v0", Poisoned(), out=out, num_questions=2, progress=False)
    episodes = list(read_episodes(out))
    judge = CachedJudge(LLMJudge(Reply()), JudgmentCache(tmp_path / "judgments.sqlite"))
    judgments = judge_episodes(episodes, judge)
    write_judgments(tmp_path / "judgments.jsonl", judgments)
    again = CachedJudge(LLMJudge(Reply()), JudgmentCache(tmp_path / "judgments.sqlite"))
    assert judge_episodes(episodes, again) == read_judgments(tmp_path / "judgments.jsonl") and again.misses == 0


@pytest.mark.parametrize("line, field", [
    ("[1, 2]", "expected a JSON object"),
    ("null", "expected a JSON object"),
    ('{"episode_id": "e"}', "missing field 'question_id'"),
    ("STEPS_INTS", "step 0: expected an object, actual int"),
    ("INT_ACTION", "step 0: field 'action': expected str, actual int"),
    ("WRONG_SEED", "field 'seed': expected int, actual str"),
    ('{"broken": ', "Expecting value"),
])
def test_every_bad_episode_line_names_file_line_and_field(tmp_path, line, field):
    out = tmp_path / "episodes.jsonl"
    generate_episodes("SwirlSynthMath-v0", Poisoned(), out=out, num_questions=1, progress=False)
    good = json.loads(out.read_text())
    if line == "STEPS_INTS":
        line = json.dumps({**good, "steps": [1, 2]})
    elif line == "INT_ACTION":
        line = json.dumps({**good, "steps": [{**good["steps"][0], "action": 7}]})
    elif line == "WRONG_SEED":
        line = json.dumps({**good, "seed": "zero"})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(out.read_text() + line + "\n")
    with pytest.raises(RecordError, match=f"bad.jsonl:2: not a valid episode record: .*{field}"):
        list(read_episodes(bad))


def test_a_bad_transitions_or_judgments_line_names_its_file_and_line(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"episode": 3, "steps": []}\n')
    with pytest.raises(RecordError, match="t.jsonl:1: not a valid transition record"):
        read_transitions(tmp_path / "t.jsonl")
    (tmp_path / "j.jsonl").write_text('{"episode_id": "e", "judgments": [{"label": "MAYBE"}]}\n')
    with pytest.raises(RecordError, match="j.jsonl:1: not a valid judgments record"):
        read_judgments(tmp_path / "j.jsonl")


def test_one_writer_per_episode_file(tmp_path):
    with EpisodeWriter(tmp_path / "episodes.jsonl"):
        with pytest.raises(FileLockedError, match="another process"):
            EpisodeWriter(tmp_path / "episodes.jsonl")
    EpisodeWriter(tmp_path / "episodes.jsonl").close()  # free again once the first has closed


class Flaky:
    """An agent whose server fails for some questions: those rows come back as faults, the others as steps."""

    name = "flaky"

    def __init__(self, failing):
        self.failing = failing

    def step_batch(self, observations):
        return [StepOutput("", fault="server http://x/v1 failed after 3 tries: HTTP 503") if any(q in o for q in self.failing)
                else StepOutput("<answer>1</answer>") for o in observations]


def test_a_fault_is_recorded_the_run_goes_on_and_a_rerun_retries_it(tmp_path):
    import gymnasium as gym

    env = gym.make("SwirlSynthMath-v0")
    questions = env.unwrapped.questions[:6]
    failing = [q.question for q in questions[:2]]
    out = tmp_path / "episodes.jsonl"
    summary = generate_episodes(env, Flaky(failing), out=out, num_questions=6, progress=False)
    assert (summary.episodes_written, summary.faults) == (4, 2)
    faults = read_faults(tmp_path / "faults.jsonl")
    assert {f.episode_id.split("/")[1] for f in faults} == {q.id for q in questions[:2]}
    assert all("HTTP 503" in f.message and f.step == 0 for f in faults)
    again = generate_episodes(env, Flaky([]), out=out, num_questions=6, progress=False)  # the server is back
    assert (again.episodes_skipped, again.episodes_written, again.faults) == (4, 2, 0)
    assert sorted(ep.question_id for ep in read_episodes(out)) == sorted(q.id for q in questions)
