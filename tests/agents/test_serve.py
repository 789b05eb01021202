"""swirl's own OpenAI-compatible server tells the truth: shapes, refusals, model names, context length, logprobs.

Every number is checked against the model itself: the log-probabilities a request gets back must
equal a direct forward pass over the same ids.
"""

from __future__ import annotations

import re
import threading

import httpx
import pytest
import torch

from swirl_agents.agents.hf import TransformersAgent
from swirl_agents.serve import serve
from tests.agents.conftest import SCRIPTED_STEP, first_step_contexts

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEARCH_STEP = SCRIPTED_STEP.split("Done")[0]
LIMIT = 400
"""The ``max_model_len`` the random-weights server is started with."""


@pytest.fixture(scope="module")
def server(scripted_model_dir):
    """The shipped server on a free port, serving the scripted tiny policy."""
    srv, _ = serve(TransformersAgent(scripted_model_dir, max_new_tokens=40, seed=0), model_name="tiny")
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def random_server(tiny_model_dir):
    """The shipped server serving the random-weights tiny policy (writes garbage), with a short context."""
    srv, _ = serve(tiny_model_dir, model_name="tiny", max_new_tokens=24, max_model_len=LIMIT)
    yield srv
    srv.shutdown()
    srv.server_close()


def post(srv, path: str, body: dict) -> httpx.Response:
    return httpx.post(srv.base_url + path, json={"model": "tiny", **body}, timeout=60)


def direct_logprobs(srv, ids: list[int]) -> torch.Tensor:
    """(T, V) log-probabilities of every next token after each prefix of ``ids``, from one plain forward pass."""
    with torch.inference_mode():
        return srv.agent.model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)


def prompt_ids(srv, text: str) -> list[int]:
    return srv.agent.tokenizer(text)["input_ids"]


def token_text(srv, token: int) -> str:
    return srv.agent.tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False)


# --- shapes and names --------------------------------------------------------------------------


def test_server_answers_in_openai_shapes(server):
    root = server.base_url.removesuffix("/v1")
    assert httpx.get(root + "/health").json() == {"status": "ok"}
    card = httpx.get(server.base_url + "/models").json()["data"][0]
    assert card["id"] == "tiny" and card["max_model_len"] == server.agent.model.config.max_position_embeddings
    assert httpx.get(server.base_url + "/models/tiny").json() == card
    context = first_step_contexts()[0]
    body = post(server, "/completions", {"prompt": context, "stop": ["</search_query>"], "max_tokens": 40}).json()
    choice = body["choices"][0]
    assert choice["text"] == SEARCH_STEP.removesuffix("</search_query>")  # OpenAI drops the stop string
    assert choice["finish_reason"] == "stop" and choice["stop_reason"] == "</search_query>"
    assert choice["logprobs"] is None  # not asked for
    assert body["object"] == "text_completion" and body["usage"]["completion_tokens"] > 0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    chat = post(server, "/chat/completions", {"max_tokens": 3, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Question: Who?"}]}).json()
    assert chat["object"] == "chat.completion" and chat["choices"][0]["finish_reason"] == "length"
    assert chat["choices"][0]["message"]["role"] == "assistant" and chat["usage"]["completion_tokens"] == 3


def test_unknown_models_get_openais_404(server):
    missing = httpx.get(server.base_url + "/models/gpt-4")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
    assert "gpt-4" in error["message"]
    wrong = httpx.post(server.base_url + "/completions", json={"model": "gpt-4", "prompt": "x", "max_tokens": 1})
    assert wrong.status_code == 404 and wrong.json()["error"]["param"] == "model"
    assert "'tiny'" in wrong.json()["error"]["message"]  # says which model it does serve


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/completions", {"prompt": "x", "n": 2}, "n"),
    ("/completions", {"prompt": "x", "best_of": 3}, "best_of"),
    ("/completions", {"prompt": "x", "stream": True}, "stream"),
    ("/completions", {"prompt": "x", "top_k": 5}, "top_k"),
    ("/completions", {"prompt": "x", "presence_penalty": 0.5}, "presence_penalty"),
    ("/completions", {"prompt": "x", "logprobs": 21}, "logprobs"),
    ("/completions", {"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ("/completions", {"prompt": "x", "temperature": "hot"}, "temperature"),
    ("/completions", {"prompt": 3}, "prompt"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "echo": True}, "echo"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}, "top_logprobs"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "messages"),  # no chat template
    ("/chat/completions", {"messages": "hi"}, "messages"),
])
def test_what_the_server_does_not_honour_is_refused_by_name(server, path, body, param):
    response = post(server, path, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and f"'{param}'" in error["message"]


def test_neutral_values_are_accepted_and_the_server_keeps_serving(server):
    body = {"prompt": first_step_contexts()[0], "max_tokens": 2, "n": 1, "best_of": 1, "stream": False,
            "presence_penalty": 0, "frequency_penalty": 0.0, "logit_bias": {}, "user": "me", "suffix": None}
    assert post(server, "/completions", body).status_code == 200
    assert httpx.post(server.base_url + "/completions", content=b"{not json").status_code == 400
    assert httpx.get(server.base_url + "/nope").status_code == 404


# --- context length ----------------------------------------------------------------------------


def test_a_prompt_over_max_model_len_is_refused_like_openai_and_tokenize_counts(random_server):
    root = random_server.base_url.removesuffix("/v1")
    text = " ".join(first_step_contexts())  # far more than LIMIT tokens
    counted = httpx.post(root + "/tokenize", json={"model": "tiny", "prompt": text}).json()
    assert counted["tokens"] == prompt_ids(random_server, text) and counted["count"] == len(counted["tokens"])
    assert counted["max_model_len"] == LIMIT < counted["count"]
    refused = post(random_server, "/completions", {"prompt": text, "max_tokens": 4})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "context_length_exceeded"
    assert f"maximum context length is {LIMIT} tokens" in refused.json()["error"]["message"]
    short = first_step_contexts()[0]
    n = len(prompt_ids(random_server, short))
    assert post(random_server, "/completions", {"prompt": short, "max_tokens": LIMIT - n}).status_code == 200
    assert post(random_server, "/completions", {"prompt": short, "max_tokens": LIMIT - n + 1}).status_code == 400


# --- log-probabilities -------------------------------------------------------------------------


def test_completion_logprobs_equal_a_direct_forward_pass(random_server):
    prompt = first_step_contexts()[3]
    body = post(random_server, "/completions", {"prompt": prompt, "max_tokens": 6, "temperature": 0, "logprobs": 3})
    lp = body.json()["choices"][0]["logprobs"]
    n = len(lp["tokens"])
    assert 1 <= n <= 6 and len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == n
    ids = prompt_ids(random_server, prompt)
    for i in range(n):  # greedy: each sampled token is the most likely one after the ids before it
        row = direct_logprobs(random_server, ids)[-1]
        token = int(row.argmax())
        assert lp["tokens"][i] == token_text(random_server, token)
        assert lp["token_logprobs"][i] == pytest.approx(float(row[token]), abs=1e-4)
        top = row.topk(3)
        expected = {token_text(random_server, t): float(v) for t, v in zip(top.indices.tolist(), top.values.tolist())}
        assert lp["top_logprobs"][i].keys() == expected.keys()
        assert all(lp["top_logprobs"][i][k] == pytest.approx(v, abs=1e-4) for k, v in expected.items())
        ids.append(token)
    assert lp["text_offset"][:2] == [0, len(lp["tokens"][0])][:n]


def test_echo_scores_the_prompt_without_generating(random_server):
    prompt = first_step_contexts()[1]
    body = post(random_server, "/completions", {"prompt": prompt, "max_tokens": 0, "echo": True, "logprobs": 1}).json()
    choice, ids = body["choices"][0], prompt_ids(random_server, prompt)
    assert choice["text"] == prompt and body["usage"]["completion_tokens"] == 0
    lp = choice["logprobs"]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None and len(lp["tokens"]) == len(ids)
    direct = direct_logprobs(random_server, ids)
    expected = [float(direct[p - 1, ids[p]]) for p in range(1, len(ids))]
    assert lp["token_logprobs"][1:] == pytest.approx(expected, abs=1e-4)


def test_chat_logprobs_match_the_completions_endpoint(random_server):
    context = first_step_contexts()[0]  # the model has no chat template: messages render back to this context
    from swirl_env.context import Context

    messages = Context.parse(context).messages()
    chat = post(random_server, "/chat/completions", {"messages": messages, "max_tokens": 3, "temperature": 0,
                                                     "logprobs": True, "top_logprobs": 2}).json()
    plain = post(random_server, "/completions", {"prompt": context, "max_tokens": 3, "temperature": 0,
                                                 "logprobs": 2}).json()["choices"][0]["logprobs"]
    content = chat["choices"][0]["logprobs"]["content"]
    assert [c["token"] for c in content] == plain["tokens"]
    assert [c["logprob"] for c in content] == pytest.approx(plain["token_logprobs"], abs=1e-5)
    assert all(len(c["top_logprobs"]) == 2 and c["bytes"] == list(c["token"].encode()) for c in content)


# --- batching, seeds, the command line --------------------------------------------------------


def test_requests_arriving_together_are_batched_and_each_gets_its_own_answer(random_server, monkeypatch):
    from swirl_agents.agents.openai_compat import OpenAICompatAgent

    model = random_server.agent
    sizes, complete = [], model.complete_ids
    monkeypatch.setattr(model, "complete_ids",
                        lambda texts, ids, **kw: sizes.append(len(texts)) or complete(texts, ids, **kw))
    contexts = first_step_contexts()[:8]
    agent = OpenAICompatAgent(random_server.base_url, "tiny", chat=False, max_tokens=8, temperature=0)
    steps = agent.act_batch(contexts)
    assert max(sizes) > 1 and sum(sizes) == len(contexts)
    expected = TransformersAgent(model.model, model.tokenizer, max_new_tokens=8, do_sample=False).act_batch(contexts)
    assert steps == expected


def test_seeded_requests_are_reproducible(random_server):
    body = {"prompt": first_step_contexts()[1], "max_tokens": 10, "seed": 3}
    texts = [post(random_server, "/completions", body).json()["choices"][0]["text"] for _ in range(2)]
    other = post(random_server, "/completions", {**body, "seed": 4}).json()["choices"][0]["text"]
    assert texts[0] == texts[1] != other


def test_cli_serves_with_its_options_and_prints_its_address(scripted_model_dir, monkeypatch, capsys):
    import swirl_agents.serve as module

    started, ready, real = [], threading.Event(), module.serve
    monkeypatch.setattr(module, "serve", lambda *a, **kw: (started.append(real(*a, **kw)), ready.set(), started[-1])[2])
    runner = threading.Thread(target=module.main, args=(["--model", str(scripted_model_dir), "--port", "0",
                                                          "--served-model-name", "cli", "--max-model-len", "300"],))
    runner.start()
    assert ready.wait(120)
    srv = started[0][0]
    try:
        assert httpx.get(srv.base_url + "/models/cli", timeout=30).json()["max_model_len"] == 300
    finally:
        srv.shutdown()  # main() returns once its server stops
        srv.server_close()
        runner.join()
    assert re.search(r"serving cli at http://127\.0\.0\.1:\d+/v1 \(max_model_len 300", capsys.readouterr().out)
