"""The judgment cache: a re-run over the same episodes makes no model calls; another judge version misses."""

from __future__ import annotations

import pytest

from swirl_agents.agents.hf import TransformersAgent
from swirl_agents.judges import (
    BAD, GOOD, CachedJudge, Judgment, JudgmentCache, LLMJudge, ReferenceMathJudge, judge_episodes,
)
from swirl_agents.judges.base import digest
from swirl_agents.judges.llm import PROMPT_V2


class CountingGenerator:
    """Wraps a real backend and counts the prompts it is asked to continue."""

    def __init__(self, inner):
        self.inner, self.name, self.prompts = inner, inner.name, 0

    def generate(self, prompts, **kw):
        self.prompts += len(prompts)
        return self.inner.generate(prompts, **kw)


@pytest.fixture(scope="module")
def counter(tiny_model_dir):
    return CountingGenerator(TransformersAgent(tiny_model_dir, do_sample=False))


def steps_of(episodes):
    return sum(len(ep.steps) for ep in episodes)


def test_second_run_makes_no_model_calls(counter, gsm8k_episodes, tmp_path):
    episodes, _ = gsm8k_episodes
    episodes = episodes[:2]
    n = steps_of(episodes)
    path = tmp_path / "judgments.sqlite"

    cache = JudgmentCache(path)
    first_judge = CachedJudge(LLMJudge(counter, max_new_tokens=6), cache)
    before = counter.prompts
    first = judge_episodes(episodes, first_judge)
    assert counter.prompts - before == n and (first_judge.hits, first_judge.misses) == (0, n)
    cache.close()

    cache = JudgmentCache(path)  # a new run: a new process would open the same file
    again = CachedJudge(LLMJudge(counter, max_new_tokens=6), cache)
    before = counter.prompts
    second = judge_episodes(episodes, again, batch_size=3)
    assert counter.prompts == before, "the cached run called the model"
    assert (again.hits, again.misses) == (n, 0) and second == first and len(cache) == n
    cache.close()


class FixedReply:
    """A model stand-in that always approves (instant; what matters here is what reaches it)."""

    name = "fixed"

    def generate(self, prompts, **kw):
        return ["Verdict: GOOD"] * len(prompts)


def test_another_judge_version_or_id_does_not_hit(gsm8k_episodes, tmp_path):
    episodes, _ = gsm8k_episodes
    n = steps_of(episodes)
    counter = CountingGenerator(FixedReply())
    cache = JudgmentCache(tmp_path / "judgments.sqlite")
    judge_episodes(episodes, CachedJudge(LLMJudge(counter, max_new_tokens=6), cache))

    stricter = LLMJudge(counter, max_new_tokens=6, prompt=PROMPT_V2 + "\nBe strict.")
    before = counter.prompts
    rerun = CachedJudge(stricter, cache)
    judged = judge_episodes(episodes, rerun)
    assert counter.prompts - before == n and (rerun.hits, rerun.misses) == (0, n)
    assert {j.judge_version for js in judged.values() for j in js} == {stricter.version}

    _, questions = gsm8k_episodes
    other = CachedJudge(ReferenceMathJudge(questions), cache)  # another judge id, same steps
    judge_episodes(episodes, other)
    assert (other.hits, other.misses) == (0, n) and len(cache) == 3 * n


def test_partial_hits_judge_only_new_steps(gsm8k_episodes, tmp_path):
    episodes, questions = gsm8k_episodes
    cache = JudgmentCache(tmp_path / "judgments.sqlite")
    judge = CachedJudge(ReferenceMathJudge(questions), cache)
    judge_episodes(episodes[:4], judge)
    old = steps_of(episodes[:4])
    judge.hits = judge.misses = 0
    out = judge_episodes(episodes[:8], judge)
    assert (judge.hits, judge.misses) == (old, steps_of(episodes[:8]) - old)
    assert out == judge_episodes(episodes[:8], ReferenceMathJudge(questions))


def test_cache_stores_and_returns_judgments(tmp_path):
    class Stub:
        id, version = "stub", "1"

    cache = JudgmentCache(tmp_path / "sub" / "judgments.sqlite")
    keys = [(digest("state"), digest("a")), (digest("state"), digest("b"))]
    good = Judgment(GOOD, 1.0, "fine", "stub", "1")
    cache.put_many(Stub(), [(keys[0], good)])
    assert cache.get_many(Stub(), keys) == [good, None]
    cache.put_many(Stub(), [(keys[0], Judgment(BAD, 0.0, "changed", "stub", "1"))])  # replaces, no duplicate
    assert len(cache) == 1 and cache.get_many(Stub(), keys[:1])[0].label == BAD
    Stub.version = "2"
    assert cache.get_many(Stub(), keys[:1]) == [None]
