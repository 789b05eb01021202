"""TransformersAgent, the tiny-model builder and the tokenizer, on real contexts and real episodes."""

from __future__ import annotations

import re
from collections.abc import Sequence

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401 - registers the env ids
from swirl_env.actions import STOP_STRINGS, parse_action, truncate_at_action
from swirl_agents.agents.base import act_batch
from swirl_agents.agents.hf import TransformersAgent, cut_at_stop
from swirl_agents.tiny import TAG_TOKENS, build_tiny_model, train_tokenizer
from swirl_agents.prompting import render_prompt
from tests.agents.conftest import SCRIPTED_STEP, first_step_contexts, training_texts
from tests.conftest import require_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLOSE_TAG = re.compile(r"</(search_query|math_exp|answer)>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def run_episode(env, agent, seed: int) -> tuple[list[str], bool, bool, dict]:
    """Play one episode; return the steps, terminated, truncated and the last info."""
    obs, info = env.reset(seed=seed)
    steps, terminated, truncated = [], False, False
    while not (terminated or truncated):
        step = agent.act(obs)
        steps.append(step)
        obs, _, terminated, truncated, info = env.step(step)
    return steps, terminated, truncated, info


@pytest.fixture(scope="module")
def agent(tiny_model_dir) -> TransformersAgent:
    return TransformersAgent(tiny_model_dir, max_new_tokens=24, seed=0, batch_size=4)


@pytest.fixture(scope="module")
def greedy(tiny_model_dir) -> TransformersAgent:
    return TransformersAgent(tiny_model_dir, max_new_tokens=16, do_sample=False, batch_size=4)


@pytest.fixture(scope="module")
def hotpot_contexts() -> list[str]:
    """First-step and after-search contexts of real HotpotQA questions with their real paragraphs."""
    from swirl_env import context as ctx
    from swirl_env.data.hotpotqa import read_hotpotqa

    questions = read_hotpotqa(require_data("hotpotqa/hotpot_dev_distractor_subset.json.gz"), limit=6)
    ins = ctx.instructions(("search_query",), 5)
    out = []
    for q in questions:
        result = "\n\n".join(f"{p.title}: {p.text}" for p in q.paragraphs[:5])
        out.append(ctx.render(ins, q.question, [(f"Search. <search_query>{q.paragraphs[0].title}</search_query>", result)]))
    return out


# --- tokenizer and model builder ---------------------------------------------------------------


def test_tokenizer_round_trips_real_contexts_and_keeps_tags_whole(greedy, hotpot_contexts):
    tok = greedy.tokenizer
    texts = hotpot_contexts + training_texts()[:4] + ["Zoë — 東京 🙂 <answer>\t x </answer>\r\n"]
    for text in texts:
        ids = tok(text)["input_ids"]
        assert tok.decode(ids) == text
        assert tok.decode(ids, skip_special_tokens=True) == text
    for tag in TAG_TOKENS:
        assert tok.convert_ids_to_tokens(tok(tag)["input_ids"]) == [tag]
    assert len(tok(hotpot_contexts[0])["input_ids"]) < len(hotpot_contexts[0]) / 2, "BPE should merge common text"


def test_tokenizer_rejects_too_small_a_vocabulary():
    with pytest.raises(ValueError, match="expected vocab_size >= "):
        train_tokenizer(["abc"], vocab_size=100)


def test_gpt2_arch_builds_and_generates(greedy):
    model = build_tiny_model(greedy.tokenizer, n_layer=1, n_embd=32, n_head=2, arch="gpt2", max_position_embeddings=512)
    steps = TransformersAgent(model, greedy.tokenizer, max_new_tokens=5).act_batch(first_step_contexts()[:2])
    assert len(steps) == 2 and all(isinstance(s, str) for s in steps)
    with pytest.raises(ValueError, match="expected arch"):
        build_tiny_model(greedy.tokenizer, arch="mamba")


def test_grouped_query_attention_shares_key_value_heads(greedy):
    from swirl_agents.agents.decoding import kv_layout

    model = build_tiny_model(greedy.tokenizer, n_layer=2, n_embd=32, n_head=4, n_kv_head=1)
    assert model.config.num_key_value_heads == 1 and kv_layout(model) == [(1, 8), (1, 8)]
    for bad in ({"n_kv_head": 3}, {"n_kv_head": 0}, {"n_kv_head": 2, "arch": "gpt2"}):
        with pytest.raises(ValueError, match="expected n_kv_head dividing n_head"):
            build_tiny_model(greedy.tokenizer, n_embd=32, n_head=4, **bad)


# --- stopping: one call is one step -------------------------------------------------------------


def test_one_call_stops_after_the_first_action(scripted_model_dir):
    agent = TransformersAgent(scripted_model_dir, max_new_tokens=60, do_sample=False)
    contexts = first_step_contexts()[:4]
    steps = agent.act_batch(contexts)
    assert steps == [SCRIPTED_STEP.split("Done")[0]] * 4
    # Generation itself stopped there (not generated to the limit and cut afterwards).
    out = agent.complete(contexts, stop=["</search_query>"])
    assert {c.finish_reason for c in out} == {"stop"} and {c.stop for c in out} == {"</search_query>"}
    assert all(c.completion_tokens < 20 for c in out)
    assert parse_action(steps[0]).tag == "search_query"


def test_generate_cuts_at_the_first_stop_string_and_reports_length(scripted_model_dir):
    agent = TransformersAgent(scripted_model_dir, max_new_tokens=60, do_sample=False)
    [text] = agent.generate([first_step_contexts()[0]], stop=["</answer>", "city"])
    assert text == "Lookup:<search_query>capital city"
    [full] = agent.complete([first_step_contexts()[0]])
    assert full.text == SCRIPTED_STEP and full.finish_reason == "stop" and full.stop is None  # ended by EOS
    [short] = agent.complete([first_step_contexts()[0]], max_new_tokens=3)
    assert short.finish_reason == "length" and short.completion_tokens == 3


def test_stop_strings_are_found_at_the_token_that_completes_them(greedy):
    import random

    import torch

    from swirl_agents.agents.decoding import StopStrings

    tok, stop = greedy.tokenizer, ("</answer>", "capital city", "é>")
    finder, live = StopStrings(tok, stop, len(tok), "cpu"), torch.ones(1, dtype=torch.bool)
    pieces = ["</answer>", "</", "answer", ">", "capital", " city", "é", "é>", " the", "Zoë", "\n", "x"]
    rng, found_some = random.Random(0), 0
    for _ in range(60):
        ids = tok("".join(rng.choice(pieces) for _ in range(10)), add_special_tokens=False)["input_ids"]
        first = next((i for i in range(len(ids)) if any(s in tok.decode(ids[: i + 1]) for s in stop)), None)
        found = next((i for i in range(len(ids)) if finder.hits(torch.tensor([ids]), i, live)[0]), None)
        assert found == first, tok.decode(ids)
        found_some += found is not None
    assert found_some > 30


def test_cut_at_stop_prefers_the_earliest_match():
    assert cut_at_stop("a</x>b</y>", ["</y>", "</x>"]) == ("a</x>", "</x>")
    assert cut_at_stop("abc", []) == ("abc", None)


# --- batching and seeds -----------------------------------------------------------------------


@pytest.mark.parametrize("prefill", ["batch", "rows"])
def test_batch_and_single_give_the_same_greedy_steps(greedy, hotpot_contexts, prefill):
    agent = TransformersAgent(greedy.model, greedy.tokenizer, max_new_tokens=16, do_sample=False, batch_size=4,
                              prefill=prefill)
    contexts = hotpot_contexts[:2] + first_step_contexts()[:3]  # very different lengths: padding matters
    single = [agent.act(c) for c in contexts]
    assert agent.act_batch(contexts) == single
    assert act_batch(agent, contexts) == single
    assert len(set(single)) > 1, "random weights should give different garbage for different contexts"


def test_same_seed_same_sampled_steps_other_seed_other_steps(greedy):
    contexts = first_step_contexts()[:4]

    def sample(seed: int) -> list[str]:
        return TransformersAgent(greedy.model, greedy.tokenizer, max_new_tokens=12, seed=seed).act_batch(contexts)

    assert sample(7) == sample(7) != sample(8)


def test_sampling_draws_from_the_softmax_within_top_p():
    import torch

    from swirl_agents.agents.decoding import sample_tokens

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits, generator = probs.log().repeat(40_000, 1), torch.Generator().manual_seed(0)

    def frequencies(temperature: float, top_p: float) -> torch.Tensor:
        picks = sample_tokens(logits, temperature, top_p, generator)
        return torch.bincount(picks, minlength=4) / len(picks)

    assert torch.allclose(frequencies(1.0, 1.0), probs, atol=0.01)
    assert torch.allclose(frequencies(0.5, 1.0), probs**2 / (probs**2).sum(), atol=0.01)
    assert torch.allclose(frequencies(1.0, 0.75), torch.tensor([0.625, 0.375, 0, 0]), atol=0.01)  # nucleus {0, 1}


def test_an_empty_prompt_still_generates(greedy):
    [out] = greedy.complete([""], max_new_tokens=3)
    assert out.completion_tokens >= 1 and out.prompt_tokens == 1


def test_steps_are_only_new_text(greedy):
    context = first_step_contexts()[0]
    step = greedy.act(context)
    assert "Question:" not in step and len(step) < 200


def test_too_long_prompt_is_left_truncated_with_a_warning(greedy):
    model = build_tiny_model(greedy.tokenizer, n_layer=1, n_embd=32, n_head=2, max_position_embeddings=64)
    agent = TransformersAgent(model, greedy.tokenizer, max_new_tokens=8)
    with pytest.warns(UserWarning, match="keeping the last tokens"):
        [step] = agent.act_batch([first_step_contexts()[0]])
    assert isinstance(step, str)


# --- prefix cache: each step reuses the KV cache of the step before --------------------------


def play_lockstep(agent: TransformersAgent, seeds: Sequence[int], steps: int) -> tuple[list[list[str]], list[int]]:
    """Play SynthQA episodes side by side for ``steps`` steps, as ``act_batch`` does (one at a time at batch_size 1).

    Returns each episode's steps and, per step, the prompt tokens that came from the prefix cache.
    """
    envs = [gym.make("SwirlSynthQA-v0") for _ in seeds]
    obs = [env.reset(seed=seed)[0] for env, seed in zip(envs, seeds)]
    played, cached, ended = [[] for _ in seeds], [], [False] * len(seeds)
    for _ in range(steps):
        out = agent.complete(obs, stop=STOP_STRINGS)
        cached.append(sum(c.cached_tokens for c in out))
        for i, (env, c) in enumerate(zip(envs, out)):
            played[i].append(truncate_at_action(c.text))
            if not ended[i]:  # an episode that ended keeps its last context
                obs[i], _, terminated, truncated, _ = env.step(played[i][-1])
                ended[i] = terminated or truncated
    return played, cached


@pytest.fixture(scope="module")
def sharp_model(greedy):
    """A tiny random Llama with peaked attention: with the usual small weights attention is nearly
    uniform, and wrong positions or misplaced keys would go unnoticed."""
    import torch

    model = build_tiny_model(greedy.tokenizer, n_layer=2, n_embd=64, n_head=4)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8.0)
            layer.self_attn.k_proj.weight.mul_(8.0)
    return model


@pytest.mark.parametrize("prefill", ["auto", "batch", "rows"])
def test_greedy_steps_are_the_same_with_and_without_the_prefix_cache(greedy, sharp_model, prefill):
    def agent(batch_size: int, prefix_cache: int | None) -> TransformersAgent:
        return TransformersAgent(sharp_model, greedy.tokenizer, max_new_tokens=16, do_sample=False,
                                 batch_size=batch_size, prefill=prefill, prefix_cache=prefix_cache)

    seeds = [0, 1, 2, 3]
    reference, none_cached = play_lockstep(agent(4, 0), seeds, 3)
    batched, cached = play_lockstep(agent(4, None), seeds, 3)
    single, single_cached = play_lockstep(agent(1, None), seeds, 3)
    assert batched == reference and single == reference
    assert none_cached == [0, 0, 0] and cached[0] == 0, "nothing cached before the first call"
    assert single_cached[0] > 0, "one at a time, later episodes' first steps reuse the shared instructions"
    assert min(cached[1:]) > 100 and min(single_cached[1:]) > 100, "later steps should reuse the earlier contexts"


def test_rows_that_stop_early_leave_the_forward_pass_and_change_nothing(greedy, sharp_model, hotpot_contexts):
    def agent(**kw) -> TransformersAgent:
        return TransformersAgent(sharp_model, greedy.tokenizer, max_new_tokens=16, do_sample=False, **kw)

    contexts = hotpot_contexts[:2] + first_step_contexts()[:6]
    free = agent(prefix_cache=0).complete(contexts, stop=())
    stop = sorted({c.text[max(0, k - 4) : k] for c, k in zip(free, range(2, 40, 5))} - {""})
    batched = agent(batch_size=8)
    sizes: list[int] = []
    hook = sharp_model.register_forward_pre_hook(lambda m, a, kw: sizes.append(kw["input_ids"].shape[0]),
                                                 with_kwargs=True)
    try:
        out = batched.complete(contexts, stop=stop)
    finally:
        hook.remove()
    alone = [agent(batch_size=1).complete([c], stop=stop)[0] for c in contexts]
    assert [c.text for c in out] == [c.text for c in alone]
    assert len({c.completion_tokens for c in out}) > 2, "rows should stop at different steps"
    assert 8 in sizes and min(sizes) < 8, "rows that stopped should have left the forward pass"
    # what the rows that left stored in the prefix cache is right: the next step reuses it exactly
    following = [c + o.text + "\n\nNext:" for c, o in zip(contexts, out)]
    again = batched.complete(following, stop=stop)
    fresh = agent(prefix_cache=0, batch_size=8).complete(following, stop=stop)
    assert [c.text for c in again] == [c.text for c in fresh]
    prompt_tokens = [len(greedy.tokenizer(x)["input_ids"]) for x in contexts]
    assert all(c.cached_tokens >= n - 2 for c, n in zip(again, prompt_tokens))  # a merge at the seam at most
    first_out = min(c.completion_tokens for c in out)
    assert all(c.cached_tokens > n for c, o, n in zip(again, out, prompt_tokens) if o.completion_tokens == first_out)


def test_sampled_steps_with_the_prefix_cache_are_reproducible(greedy):
    def play(seed: int) -> list[list[str]]:
        agent = TransformersAgent(greedy.model, greedy.tokenizer, max_new_tokens=12, seed=seed, batch_size=4)
        return play_lockstep(agent, [0, 1, 2, 3], 3)[0]

    assert play(7) == play(7) != play(8)


def test_prefix_cache_keeps_at_most_its_capacity(greedy):
    agent = TransformersAgent(greedy.model, greedy.tokenizer, max_new_tokens=2, do_sample=False, prefix_cache=3)
    contexts = first_step_contexts()[:5]
    agent.complete(contexts)
    assert len(agent.cache) == 3
    agent.complete(contexts[:1])
    [again] = agent.complete(contexts[:1])
    assert again.cached_tokens == again.prompt_tokens - 1  # all but the last token, whose logits start decoding
    agent.clear_cache()
    assert len(agent.cache) == 0 and agent.complete(contexts[:1])[0].cached_tokens == 0


def test_a_prompt_that_is_not_a_continuation_is_prefilled_in_full(greedy):
    agent = TransformersAgent(greedy.model, greedy.tokenizer, max_new_tokens=4, do_sample=False)
    context = first_step_contexts()[0]
    agent.complete([context])
    [edited] = agent.complete(["X" + context])
    assert edited.cached_tokens == 0


def test_a_new_episode_reuses_the_instructions_of_another(greedy, sharp_model):
    from swirl_agents.agents.decoding import common_prefix

    contexts = first_step_contexts()[0:3:2]  # two questions, one instruction block
    first, second = (greedy.tokenizer(c)["input_ids"] for c in contexts)
    shared = common_prefix(first, second)
    assert 0 < shared < len(second) - 1
    agent = TransformersAgent(sharp_model, greedy.tokenizer, max_new_tokens=16, do_sample=False)
    agent.complete(contexts[:1])
    [reused] = agent.complete(contexts[1:])
    [fresh] = TransformersAgent(sharp_model, greedy.tokenizer, max_new_tokens=16, do_sample=False,
                                prefix_cache=0).complete(contexts[1:])
    assert reused.cached_tokens == shared and fresh.cached_tokens == 0
    assert reused.text == fresh.text


def test_changing_the_weights_drops_the_prefix_cache(greedy):
    import torch

    model = build_tiny_model(greedy.tokenizer, n_layer=1, n_embd=32, n_head=2)
    agent = TransformersAgent(model, greedy.tokenizer, max_new_tokens=4, do_sample=False)
    context = first_step_contexts()[0]
    before = agent.complete([context])[0]
    with torch.no_grad():  # as an optimizer step would, in place
        model.lm_head.weight.mul_(-1.0)
    after = agent.complete([context])[0]
    fresh = TransformersAgent(model, greedy.tokenizer, max_new_tokens=4, do_sample=False).complete([context])[0]
    assert before.cached_tokens == 0 and after.cached_tokens == 0 and after.text == fresh.text


@pytest.mark.parametrize("arch", ["llama-gqa", "mistral-sliding-window"])
def test_other_cache_layouts_batch_like_single_prompts(greedy, hotpot_contexts, arch):
    """Grouped-query attention goes through the prefix cache; a sliding-window cache through the model's own."""
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    kw = dict(vocab_size=len(greedy.tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
              bos_token_id=greedy.tokenizer.bos_token_id, eos_token_id=greedy.tokenizer.eos_token_id)
    model_class, config = ((LlamaForCausalLM, LlamaConfig(**kw)) if arch == "llama-gqa" else
                           (MistralForCausalLM, MistralConfig(sliding_window=64, **kw)))
    agent = TransformersAgent(model_class(config).eval(), greedy.tokenizer, max_new_tokens=8, do_sample=False)
    contexts = hotpot_contexts[:2] + first_step_contexts()[:2]
    single = [agent.act(c) for c in contexts]
    agent.clear_cache()
    assert agent.act_batch(contexts) == single
    steps, cached = play_lockstep(agent, [0, 1], 2)
    assert (cached[1] > 0) == (arch == "llama-gqa")


def test_grouped_query_steps_match_the_models_own_generate(greedy, hotpot_contexts):
    """The decoding loop (its masks, cache and positions) against transformers' generate, on peaked attention."""
    import torch

    model = build_tiny_model(greedy.tokenizer, n_layer=2, n_embd=64, n_head=4, n_kv_head=1, seed=3)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8.0)
            layer.self_attn.k_proj.weight.mul_(8.0)
    contexts = hotpot_contexts[:2] + first_step_contexts()[:2]
    agent = TransformersAgent(model, greedy.tokenizer, max_new_tokens=12, do_sample=False, batch_size=4)
    ours = [c.text for c in agent.complete(contexts, stop=())]
    theirs = []
    for context in contexts:
        ids = greedy.tokenizer(context, return_tensors="pt")["input_ids"]
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
        theirs.append(greedy.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    assert ours == theirs


def test_stop_strings_spanning_several_tokens_stop_generation(scripted_model_dir):
    agent = TransformersAgent(scripted_model_dir, max_new_tokens=60, do_sample=False)
    [out] = agent.complete([first_step_contexts()[0]], stop=["capital city"])
    assert out.text == "Lookup:<search_query>capital city" and out.stop == "capital city"
    assert out.completion_tokens == len(agent.tokenizer(out.text, add_special_tokens=False)["input_ids"])


# --- chat template ----------------------------------------------------------------------------


def test_chat_template_path_renders_messages(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = CHAT_TEMPLATE
    agent = TransformersAgent(tiny_model_dir, tok, max_new_tokens=8, do_sample=False)
    assert agent.chat is True
    context = first_step_contexts()[0]
    prompt = render_prompt(tok, context)
    assert prompt.startswith("<|system|>\nAnswer the question") and prompt.endswith("<|assistant|>\n")
    [direct] = agent.complete([prompt], templated=True)
    assert agent.act(context) == direct.text
    messages = [{"role": "user", "content": "Say hi."}]
    [text] = agent.generate([messages], max_new_tokens=4)
    [expected] = agent.complete([tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)],
                                templated=True, max_new_tokens=4)
    assert text == expected.text


def test_chat_messages_without_a_template_is_a_clear_error(greedy):
    with pytest.raises(ValueError, match="expected a tokenizer with a chat template"):
        greedy.generate([[{"role": "user", "content": "hi"}]])


def test_bad_settings_are_clear_errors(greedy):
    with pytest.raises(ValueError, match="expected prefill"):
        TransformersAgent(greedy.model, greedy.tokenizer, prefill="fast")
    with pytest.raises(ValueError, match="expected batch_size >= 1"):
        TransformersAgent(greedy.model, greedy.tokenizer, batch_size=0)


def test_loaded_model_without_tokenizer_is_a_clear_error(greedy):
    with pytest.raises(ValueError, match="expected a tokenizer"):
        TransformersAgent(greedy.model)


def test_name_records_the_model_path(agent, tiny_model_dir):
    assert agent.name == f"transformers:{tiny_model_dir}"


# --- real episodes ----------------------------------------------------------------------------


def test_random_weights_complete_synthqa_episodes_without_crashing(agent):
    env = gym.make("SwirlSynthQA-v0")
    for seed in (0, 1):
        steps, terminated, truncated, info = run_episode(env, agent, seed)
        assert terminated or truncated
        assert 1 <= len(steps) <= 5
        assert info["malformed_steps"] + info["tool_calls"] >= len(steps) - terminated
        for step in steps:  # at most one action, and nothing after its closing tag
            closes = list(CLOSE_TAG.finditer(step))
            assert len(closes) <= 1 and (not closes or closes[0].end() == len(step))


def test_random_weights_complete_a_real_hotpotqa_episode(agent):
    require_data("hotpotqa/hotpot_dev_distractor_subset.json.gz")
    require_data("wikipedia/hotpotqa_paragraphs.jsonl.gz")  # the search corpus
    env = gym.make("SwirlHotpot-v0")
    steps, terminated, truncated, info = run_episode(env, agent, 0)
    assert terminated or truncated
    assert 1 <= len(steps) <= 5
    assert "gold_answers" in info


def test_scripted_policy_searches_in_a_real_episode(scripted_model_dir):
    agent = TransformersAgent(scripted_model_dir, max_new_tokens=40, do_sample=False)
    env = gym.make("SwirlSynthQA-v0")
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(agent.act(obs))
    assert info["tool"] == "search_query" and info["tool_input"] == "capital city"
    assert "<result>" in obs and not terminated
