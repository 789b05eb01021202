"""Reference judges on hand-built states from real questions, on the built-in world; the outcome judge; judgment files."""

from __future__ import annotations

import re
from fractions import Fraction

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401 - registers the env ids
from swirl_env import context as ctx
from swirl_env.data import load_questions
from swirl_env.data.synth import synth_questions
from swirl_env.scoring import normalize_answer, qa_scores
from swirl_env.tools.calculator import evaluate
from swirl_agents.agents.reference.math import ReferenceMathAgent
from swirl_agents.agents.reference.qa import ReferenceQAAgent
from swirl_agents.episodes import Episode, Step, read_episodes
from swirl_agents.judges import (
    BAD, GOOD, Judgment, OutcomeJudge, ReferenceMathJudge, ReferenceQAJudge, judge_episodes,
    process_label_accuracy, read_judgments, write_judgments,
)
from swirl_agents.rollout import generate_episodes
from tests.conftest import require_data

QA_RULES = ctx.instructions(("search_query",), 5)
MATH_RULES = ctx.instructions(("math_exp",), 10)


def state(instructions, question, steps=()):
    return ctx.render(instructions, question.question, list(steps))


def passages(question, titles):
    """A search result holding the question's own paragraphs ``titles``, rendered ``title: text``."""
    by_title = {p.title: p for p in question.paragraphs}
    return "\n\n".join(f"{t}: {by_title[t].text}" for t in titles)


def search(query, question, titles):
    return (f"Let me look this up. <search_query>{query}</search_query>", passages(question, titles))


def label(judge, state_text, step_text):
    return judge.judge(state_text, step_text).label


# --- HotpotQA -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hotpot():
    require_data("hotpotqa/hotpot_dev_distractor_subset.json.gz")
    questions = load_questions("hotpotqa")
    return questions, ReferenceQAJudge(questions)


def words(text):
    return set(normalize_answer(text).split())


def far_distractors(question):
    """Distractor titles sharing no word with any supporting title, and no overlap with the answer."""
    support = set().union(*(words(t) for t in question.supporting_titles))
    return [p.title for p in question.paragraphs if not p.is_supporting and words(p.title) and not words(p.title) & support
            and qa_scores(p.title, question.answers)["f1"] == 0.0]


def test_hotpot_searches(hotpot):
    questions, judge = hotpot
    checked = 0
    for q in questions[:80]:
        distractors = far_distractors(q)
        first, second = q.supporting_titles[:2]
        if not distractors or words(first) & words(second):
            continue
        start = state(QA_RULES, q)
        assert label(judge, start, f"First the article on {first}. <search_query>{first}</search_query>") == GOOD, q.id
        assert label(judge, start, f"<search_query>{distractors[0]}</search_query>") == BAD, q.id
        half = state(QA_RULES, q, [search(first, q, [first, distractors[0]])])
        assert label(judge, half, f"<search_query>{second}</search_query>") == GOOD, q.id
        assert label(judge, half, f"Again. <search_query>{first}</search_query>") == BAD, q.id  # already retrieved
        full = state(QA_RULES, q, [search(first, q, [first]), search(second, q, [second])])
        assert label(judge, full, f"<search_query>{distractors[0]}</search_query>") == BAD, q.id  # should answer
        checked += 1
    assert checked >= 30


def test_hotpot_answers(hotpot):
    questions, judge = hotpot
    checked = 0
    for q in questions[:80]:
        distractors, titles = far_distractors(q), list(q.supporting_titles)
        if not distractors:
            continue
        answer = f"So the answer is <answer>{q.answer}</answer>"
        assert label(judge, state(QA_RULES, q), answer) == BAD, q.id  # right, but before any evidence
        full = state(QA_RULES, q, [search(t, q, [t]) for t in titles])
        assert label(judge, full, answer) == GOOD, q.id
        assert label(judge, full, f"<answer>{distractors[0]}</answer>") == BAD, q.id
        assert label(judge, full, f"<answer>{q.answer}") == BAD, q.id  # unclosed tag: malformed
        assert label(judge, full, "<math_exp>2+2</math_exp>") == BAD, q.id
        checked += 1
    assert checked >= 40


def test_hotpot_answer_found_in_one_article_is_supported(hotpot):
    questions, judge = hotpot
    checked = 0
    for q in questions[:200]:
        holding = [t for t in q.supporting_titles
                   if f" {normalize_answer(q.answer)} " in f" {normalize_answer(passages(q, [t]))} "]
        if q.answer in ("yes", "no") or not holding or len(q.supporting_titles) < 2:
            continue
        seen = state(QA_RULES, q, [search(holding[0], q, [holding[0]])])
        assert label(judge, seen, f"<answer>{q.answer}</answer>") == GOOD, q.id
        checked += 1
    assert checked >= 20


def test_hotpot_yes_no_needs_every_article(hotpot):
    questions, judge = hotpot
    yes_no = [q for q in questions if normalize_answer(q.answer) in ("yes", "no")][:20]
    assert len(yes_no) == 20
    for q in yes_no:
        first, *rest = q.supporting_titles
        # "no" and "yes" hide in words like "known" or "eyes": only every compared article supports the answer
        partial = state(QA_RULES, q, [search(first, q, [first, *[p.title for p in q.paragraphs if not p.is_supporting]])])
        assert label(judge, partial, f"<answer>{q.answer}</answer>") == BAD, q.id
        full = state(QA_RULES, q, [search(t, q, [t]) for t in q.supporting_titles])
        assert label(judge, full, f"<answer>{q.answer}</answer>") == GOOD, q.id
        other = "no" if normalize_answer(q.answer) == "yes" else "yes"
        assert label(judge, full, f"<answer>{other}</answer>") == BAD, q.id


def test_unknown_question_is_a_clear_error(hotpot):
    _, judge = hotpot
    with pytest.raises(KeyError, match="questions="):
        judge.judge(ctx.render_start(QA_RULES, "Who wrote a question nobody asked?"), "<answer>x</answer>")


# --- GSM8K ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gsm8k():
    require_data("gsm8k/test.jsonl")
    questions = load_questions("gsm8k")
    return questions, ReferenceMathJudge(questions)


def annotated(question):
    """``(expression, value)`` of each ``<<expression=value>>`` of the solution."""
    return [(e, Fraction(v.replace(",", "")) if re.fullmatch(r"-?[\d,]+(\.\d+)?", v) else None)
            for e, v in re.findall(r"<<([^=<>]*)=([^<>]*)>>", question.solution)]


def misread(expression, avoid):
    """``expression`` with its first number misread (plus 7, 11 or 13) so its value is none of ``avoid``."""
    for bump in (7, 11, 13):
        wrong = re.sub(r"\d+(\.\d+)?", lambda m: str(Fraction(m.group(0)) + bump), expression, count=1)
        if Fraction(str(evaluate(wrong))) not in avoid:
            return wrong
    raise AssertionError(f"no misreading of {expression} avoids {avoid}")


def compute(expression, value):
    return (f"Compute it. <math_exp>{expression}</math_exp>", str(value))


def test_gsm8k_steps(gsm8k):
    questions, judge = gsm8k
    checked = 0
    for q in questions[:60]:
        plan = annotated(q)
        values = [v for _, v in plan]
        gold = Fraction(q.answer.replace(",", ""))
        if len(plan) < 2 or None in values or len(set(values)) < len(values) or values[0] == gold:
            continue
        first = plan[0][0]
        start = state(MATH_RULES, q)
        assert label(judge, start, f"First, {first}. <math_exp>{first}</math_exp>") == GOOD, q.id
        wrong = misread(first, set(values) | {gold})
        assert label(judge, start, f"First, {wrong}. <math_exp>{wrong}</math_exp>") == BAD, q.id
        assert label(judge, start, f"So the answer is <answer>{values[0]}</answer>") == BAD, q.id  # intermediate
        assert label(judge, start, "<math_exp>16 * </math_exp>") == BAD, q.id  # not well formed
        assert label(judge, start, "<search_query>duck eggs</search_query>") == BAD, q.id
        done = state(MATH_RULES, q, [compute(e, v) for e, v in plan])
        assert label(judge, done, f"The answer is <answer>{q.answer}</answer>") == GOOD, q.id
        assert label(judge, done, f"<answer>{gold + 1}</answer>") == BAD, q.id
        assert label(judge, done, f"Again. <math_exp>{first}</math_exp>") == BAD, q.id  # no progress
        checked += 1
    assert checked >= 20


def test_gsm8k_step_carrying_an_earlier_wrong_value_is_good(gsm8k):
    questions, judge = gsm8k
    q = next(q for q in questions if q.id == "gsm8k-test-0")  # 16-3-4 = 9 eggs sold; 9*2 = 18 dollars
    misread = state(MATH_RULES, q, [compute("16-3-5", 8)])
    assert label(judge, misread, "She makes 8 * 2 dollars. <math_exp>8*2</math_exp>") == GOOD
    assert label(judge, misread, "She makes 9 * 2 dollars. <math_exp>9*2</math_exp>") == GOOD  # the gold step
    assert label(judge, misread, "<math_exp>8*3</math_exp>") == BAD
    carried = state(MATH_RULES, q, [compute("16-3-5", 8), compute("8*2", 16)])
    assert label(judge, carried, "<answer>16</answer>") == GOOD  # follows from the context
    assert label(judge, carried, "<answer>18</answer>") == GOOD  # the gold answer
    assert label(judge, carried, "<answer>8</answer>") == BAD


# --- the built-in world ---------------------------------------------------------------------------


def test_synth_qa_hops():
    questions = synth_questions("qa", "train")[:50]
    judge = ReferenceQAJudge(questions)
    for q in questions:
        hop1, hop2 = q.hops[0], q.hops[-1]
        start = state(QA_RULES, q)
        assert label(judge, start, f"<search_query>{hop1.question}</search_query>") == GOOD, q.id
        distractor = next(t for t in far_distractors(q))
        assert label(judge, start, f"<search_query>{distractor}</search_query>") == BAD, q.id
        assert label(judge, start, f"<answer>{q.answer}</answer>") == BAD, q.id
        full = state(QA_RULES, q, [search(h.question, q, [h.paragraph_title]) for h in q.hops])
        assert label(judge, full, f"<answer>{q.answer}</answer>") == GOOD, q.id
        assert label(judge, full, f"<answer>{distractor}</answer>") == BAD, q.id
        assert hop2.paragraph_title in q.supporting_titles


def mistake_agreement(episodes, judgments):
    """(steps, steps whose judge label agrees with the agent's mistake annotation)."""
    pairs = [(s, j) for ep in episodes for s, j in zip(ep.steps, judgments[ep.episode_id])]
    return len(pairs), sum((j.label == BAD) == bool(s.meta.get("mistake")) for s, j in pairs)


@pytest.mark.parametrize("env_id", ["SwirlSynthMath-v0", "SwirlGSM8K-v0"])
def test_reference_math_agent_episodes(env_id, tmp_path):
    if env_id == "SwirlGSM8K-v0":
        require_data("gsm8k/test.jsonl")
    env = gym.make(env_id)
    questions = env.unwrapped.questions
    judge = ReferenceMathJudge(questions)
    perfect, noisy = tmp_path / "perfect.jsonl", tmp_path / "noisy.jsonl"
    generate_episodes(env, ReferenceMathAgent(questions), out=perfect, num_questions=40, progress=False)
    episodes = list(read_episodes(perfect))
    assert process_label_accuracy(judge_episodes(episodes, judge)) == 1.0
    generate_episodes(env, ReferenceMathAgent(questions, mistake_rate=0.3), out=noisy, num_questions=60, progress=False)
    episodes = list(read_episodes(noisy))
    steps, agree = mistake_agreement(episodes, judge_episodes(episodes, judge))
    assert sum(bool(s.meta.get("mistake")) for ep in episodes for s in ep.steps) >= 20
    assert agree / steps >= 0.95


@pytest.mark.parametrize("env_id", ["SwirlSynthQA-v0", "SwirlHotpot-v0"])
def test_reference_qa_agent_episodes(env_id, tmp_path):
    if env_id == "SwirlHotpot-v0":
        require_data("hotpotqa/hotpot_dev_distractor_subset.json.gz")
        require_data("wikipedia/hotpotqa_paragraphs.jsonl.gz")
    env = gym.make(env_id)
    questions = env.unwrapped.questions
    judge = ReferenceQAJudge(questions)
    generate_episodes(env, ReferenceQAAgent(questions), out=tmp_path / "perfect.jsonl", num_questions=30, progress=False)
    episodes = list(read_episodes(tmp_path / "perfect.jsonl"))
    assert process_label_accuracy(judge_episodes(episodes, judge)) >= 0.95
    generate_episodes(env, ReferenceQAAgent(questions, mistake_rate=0.3), out=tmp_path / "noisy.jsonl",
                      num_questions=60, progress=False)
    episodes = list(read_episodes(tmp_path / "noisy.jsonl"))
    steps, agree = mistake_agreement(episodes, judge_episodes(episodes, judge))
    assert agree / steps >= 0.9


# --- the outcome judge, judgment files, process label accuracy ------------------------------------


def episode(eid, steps, answer, reward):
    return Episode(eid, eid, "SwirlSynthMath-v0", "test", 0, "2+2?", "Solve.", steps, answer,
                   {"exact_match": reward}, reward, answer is not None, answer is None)


STEPS = (Step("<math_exp>2+2</math_exp>", "math_exp", "2+2", "4"), Step("<answer>4</answer>", "answer", "4", None))


def test_outcome_judge():
    right, wrong = episode("right", STEPS, "4", 1.0), episode("wrong", STEPS, "5", 0.0)
    cut = episode("cut", STEPS[:1], None, 0.0)
    out = judge_episodes([right, wrong, cut], OutcomeJudge())
    assert [j.label for j in out["right"]] == [GOOD, GOOD] and [j.score for j in out["right"]] == [1.0, 1.0]
    assert [j.label for j in out["wrong"]] == [BAD, BAD] and [j.label for j in out["cut"]] == [BAD]
    assert out["cut"][0].rationale == "no answer" and "'5'" in out["wrong"][0].rationale
    with pytest.raises(TypeError, match="judge_episodes"):
        OutcomeJudge().judge("state", "<answer>4</answer>")


def test_judgments_round_trip(gsm8k_episodes, tmp_path):
    episodes, questions = gsm8k_episodes
    judgments = judge_episodes(episodes, ReferenceMathJudge(questions), batch_size=5)
    assert [len(judgments[ep.episode_id]) for ep in episodes] == [len(ep.steps) for ep in episodes]
    path = tmp_path / "out" / "judgments.jsonl"
    write_judgments(path, judgments)
    assert read_judgments(path) == judgments
    assert len(path.read_text().splitlines()) == len(episodes)
    path.write_text(path.read_text() + '{"episode_id": "x", "judgments": [{"label": "MAYBE"}]}\n')
    with pytest.raises(ValueError, match=r"judgments.jsonl:\d+"):
        read_judgments(path)


def test_judge_episodes_matches_judge_per_step(gsm8k_episodes):
    episodes, questions = gsm8k_episodes
    judge = ReferenceMathJudge(questions)
    batched = judge_episodes(episodes, judge, batch_size=3)
    for ep in episodes:
        assert batched[ep.episode_id] == [judge.judge(s, st.action) for s, st in zip(ep.states(), ep.steps)]


def test_process_label_accuracy():
    def j(lab):
        return Judgment(lab, 1.0 if lab == GOOD else 0.0, "", "hand", "1")

    judgments = {"a": [j(GOOD), j(BAD), j(GOOD)], "b": [j(GOOD)], "c": []}
    assert process_label_accuracy(judgments) == 0.75
    assert process_label_accuracy(judgments["a"]) == pytest.approx(2 / 3)
    assert process_label_accuracy([j("UNPARSEABLE"), j(GOOD)]) == 0.5
    assert process_label_accuracy({}) == 0.0
