"""The LLM judge end to end (tiny transformers model, the shipped OpenAI-compatible server) and its reply parser."""

from __future__ import annotations

import math

import pytest

from swirl_agents.agents.hf import TransformersAgent
from swirl_agents.agents.openai_compat import OpenAICompatAgent
from swirl_agents.judges import BAD, GOOD, LABELS, UNPARSEABLE, LLMJudge, judge_episodes, parse_verdict
from swirl_agents.judges.llm import PROMPT_V2
from swirl_agents.serve import serve

# --- parse_verdict ------------------------------------------------------------------------------

REPLIES = [
    # what instruction-tuned judges write
    ("The query looks for the director, which is still missing.\nVerdict: GOOD", GOOD),
    ("The step searches for a paragraph that is not needed.\n\nVerdict: BAD", BAD),
    ("**Verdict:** GOOD", GOOD),
    ("Verdict: **BAD**", BAD),
    ("verdict: good", GOOD),
    ("Final verdict - BAD.", BAD),
    ("Verdict:\nGOOD", GOOD),
    ("Verdict: GOOD\nOn reflection the calculation uses the wrong price.\nVerdict: BAD", BAD),
    ("I would say this is not bad at all. Verdict: GOOD", GOOD),
    # no verdict line: one label named in capitals counts
    ("GOOD", GOOD),
    ("The step is BAD because 3*4 is not the number of apples.", BAD),
    # never a guess
    ("", UNPARSEABLE),
    ("It could be GOOD or BAD.", UNPARSEABLE),
    ("The step looks good to me.", UNPARSEABLE),
    ("Verdict: NOT GOOD", UNPARSEABLE),
    ("The query isn't GOOD.", UNPARSEABLE),
    ('Explain briefly, then end with a line "Verdict: GOOD" or "Verdict: BAD".', UNPARSEABLE),
    ("<search_query>capital city</search_query>ĠV er ct", UNPARSEABLE),
    ("Verdict: GOODNESS", UNPARSEABLE),
]


@pytest.mark.parametrize("reply,label", REPLIES)
def test_parse_verdict(reply, label):
    assert parse_verdict(reply) == label


# --- the judge with a fake backend: what it sends and stores --------------------------------------


class EchoGenerator:
    """A backend that records its calls and replies with a fixed text."""

    name = "echo"

    def __init__(self, reply: str):
        self.reply, self.calls = reply, []

    def generate(self, prompts, *, max_new_tokens=None, stop=None):
        self.calls.append((list(prompts), max_new_tokens))
        return [self.reply for _ in prompts]


def test_prompt_holds_state_and_action_and_version_follows_prompt():
    gen = EchoGenerator("Fine.\nVerdict: GOOD")
    judge = LLMJudge(gen, max_new_tokens=17)
    j = judge.judge("Solve it.\n\nQuestion: 2+2?\n\n", "Add. <math_exp>2+2</math_exp>")
    (prompts, max_new), = gen.calls
    assert max_new == 17 and "2+2?" in prompts[0] and "<math_exp>2+2</math_exp>" in prompts[0]
    assert (j.label, j.score, j.rationale, j.judge_id) == (GOOD, 1.0, "Fine.\nVerdict: GOOD", "llm:echo")
    assert j.judge_version == judge.version and judge.version.startswith("prompt-")
    assert LLMJudge(gen).version == judge.version
    assert LLMJudge(gen, prompt=PROMPT_V2 + "\nBe strict.").version != judge.version


def test_chat_mode_sends_one_user_message():
    gen = EchoGenerator("Verdict: BAD")
    j = LLMJudge(gen, chat=True).judge("Solve it.\n\nQuestion: 2+2?\n\n", "<answer>5</answer>")
    (prompts, _), = gen.calls
    assert prompts[0][0]["role"] == "user" and "<answer>5</answer>" in prompts[0][0]["content"]
    assert (j.label, j.score) == (BAD, 0.0)


def test_backend_without_generate_is_a_clear_error():
    with pytest.raises(TypeError, match="generate"):
        LLMJudge(object())


# --- end to end on real GSM8K episodes ---------------------------------------------------------------


def check_judgments(judgments, episodes, judge):
    """One judgment per step, labels in LABELS and consistent with the stored reply, provenance set."""
    assert set(judgments) == {ep.episode_id for ep in episodes}
    flat = [j for ep in episodes for j in judgments[ep.episode_id]]
    assert [len(judgments[ep.episode_id]) for ep in episodes] == [len(ep.steps) for ep in episodes]
    for j in flat:
        assert j.label in LABELS and j.label == parse_verdict(j.rationale)
        assert j.score == (1.0 if j.label == GOOD else 0.0)
        assert (j.judge_id, j.judge_version) == (judge.id, judge.version)
    return flat


@pytest.fixture(scope="module")
def scripted_judge_dirs(tiny_model_dir, tmp_path_factory):
    """The tiny model rewired to always approve, and to always reject: {label: model folder}."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.tiny import script_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    out = {}
    for label, script in ((GOOD, "Looks right. Verdict: Good"), (BAD, "Verdict: BAD")):
        model = script_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, script)
        out[label] = tmp_path_factory.mktemp(f"judge_{label.lower()}")
        model.save_pretrained(out[label])
        tokenizer.save_pretrained(out[label])
    return out


def test_random_tiny_model_end_to_end(tiny_model_dir, gsm8k_episodes):
    episodes, _ = gsm8k_episodes
    episodes = episodes[:2]
    judge = LLMJudge(TransformersAgent(tiny_model_dir, do_sample=False), max_new_tokens=12)
    flat = check_judgments(judge_episodes(episodes, judge, batch_size=8), episodes, judge)
    # Random weights write garbage: an honest parser reports it as unparseable, not as a verdict.
    assert sum(j.label == UNPARSEABLE for j in flat) >= len(flat) // 2
    assert all(j.rationale for j in flat)


@pytest.mark.parametrize("label", [GOOD, BAD])
def test_scripted_model_verdicts_come_through(scripted_judge_dirs, gsm8k_episodes, label):
    episodes, _ = gsm8k_episodes
    judge = LLMJudge(TransformersAgent(scripted_judge_dirs[label], do_sample=False), max_new_tokens=20)
    flat = check_judgments(judge_episodes(episodes[:2], judge), episodes[:2], judge)
    assert {j.label for j in flat} == {label}


def test_openai_compatible_server_end_to_end(tiny_model_dir, scripted_judge_dirs, gsm8k_episodes):
    episodes, _ = gsm8k_episodes
    episodes = episodes[:2]
    for model_dir, expect in ((tiny_model_dir, None), (scripted_judge_dirs[BAD], BAD)):
        server, _ = serve(model_dir, "127.0.0.1", port=0, model_name="judge", do_sample=False)
        try:
            backend = OpenAICompatAgent(server.base_url, "judge", chat=False, temperature=0.0, max_retries=1)
            judge = LLMJudge(backend, max_new_tokens=20)
            assert judge.id == "llm:openai:judge"
            flat = check_judgments(judge_episodes(episodes, judge), episodes, judge)
        finally:
            server.shutdown()
            server.server_close()
        if expect is None:
            assert sum(j.label == UNPARSEABLE for j in flat) >= len(flat) // 2
        else:
            assert {j.label for j in flat} == {expect}


def test_logprob_mode_grades_by_the_probability_of_good(tiny_model_dir):
    from swirl_agents.agents.hf import TransformersAgent
    from swirl_env.context import Context

    agent = TransformersAgent(tiny_model_dir)
    judge = LLMJudge(agent, mode="logprob")
    j = judge.judge(Context("Task.", "Who?"), "<search_query>x</search_query>")
    prompt = judge.render(Context("Task.", "Who?"), "<search_query>x</search_query>")
    scores = agent.label_logprobs([prompt], [" GOOD", " BAD"])[0]
    p_good = 1 / (1 + math.exp(scores[" BAD"] - scores[" GOOD"]))
    assert j.score == pytest.approx(p_good) and j.label == (GOOD if p_good >= 0.5 else "BAD")
    assert judge.version.endswith("/logprob") and judge.version != LLMJudge(agent).version
    with pytest.raises(ValueError, match="chat=False"):
        LLMJudge(agent, mode="logprob", chat=True)
