"""OpenAICompatAgent against the shipped server (real model, real episodes) and against servers that misbehave.

The misbehaving servers are real HTTP servers on local ports, written to fail on purpose: a reply
dripped one byte at a time, garbage, wrong types, 429 with ``Retry-After``, 500 then OK, a huge
body, a context-length refusal. Deadlines are checked against what the server would have taken
(the call must end long before the drip does), never against a tight wall-clock figure.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gymnasium as gym
import httpx
import pytest
import torch

import swirl_env  # noqa: F401 - registers the env ids
from swirl_env.context import Context
from swirl_agents.agents.openai_compat import OpenAICompatAgent, ServerError, restore_stop
from swirl_agents.serve import serve
from tests.agents.conftest import SCRIPTED_STEP, first_step_contexts
from tests.agents.test_serve import server  # noqa: F401 - the scripted policy's server, a fixture
from tests.conftest import require_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEARCH_STEP = SCRIPTED_STEP.split("Done")[0]
CONTEXT = first_step_contexts()[0]


@pytest.fixture(scope="module")
def random_server(tiny_model_dir):
    """The shipped server serving the random-weights tiny policy (writes garbage)."""
    srv, _ = serve(tiny_model_dir, model_name="tiny", max_new_tokens=24)
    yield srv
    srv.shutdown()
    srv.server_close()


class Misbehaving:
    """A real HTTP server on a free port; ``script(handler, request)`` answers each request (``send`` helps).

    ``requests`` keeps every request as ``(time, method, path, JSON body)``.
    """

    def __init__(self, script):
        owner = self
        self.requests: list[tuple[float, str, str, dict | None]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self, method):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = (time.perf_counter(), method, self.path, json.loads(raw) if raw else None)
                owner.requests.append(request)
                try:
                    script(self, request)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: fine
                    pass

            def do_POST(self):  # noqa: N802
                self.handle_one("POST")

            def do_GET(self):  # noqa: N802
                self.handle_one("GET")

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"

    def posts(self, path: str = "/v1/chat/completions") -> list[dict]:
        return [body for _, method, p, body in self.requests if method == "POST" and p == path]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.http.shutdown()
        self.http.server_close()


def send(handler, status: int, body, headers: dict | None = None) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    for key, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


def chat_reply(content, finish_reason: str = "stop") -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason}]}


def no_models(handler, request) -> bool:
    """Answer ``GET /models`` without a context length (as a server that does not report one); True if handled."""
    if request[1] == "GET":
        send(handler, 200, {"object": "list", "data": [{"id": "m", "object": "model"}]})
        return True
    return False


# --- the agent against the shipped server: real episodes --------------------------------------


@pytest.mark.parametrize("chat", [True, False])
def test_agent_stops_after_one_action_and_restores_the_stop_string(server, chat):
    agent = OpenAICompatAgent(server.base_url, "tiny", chat=chat, max_tokens=40)
    assert agent.act_batch(first_step_contexts()[:3]) == [SEARCH_STEP] * 3


@pytest.mark.parametrize(("which", "chat"), [("server", True), ("server", False), ("random_server", True)])
def test_agent_completes_real_synthqa_episodes(request, which, chat):
    agent = OpenAICompatAgent(request.getfixturevalue(which).base_url, "tiny", chat=chat, max_tokens=24, seed=0)
    env = gym.make("SwirlSynthQA-v0")
    obs, _ = env.reset(seed=0)
    for turn in range(5):
        obs, _, terminated, truncated, info = env.step(agent.act(obs))
        if terminated or truncated:
            break
    assert truncated and turn == 4  # neither policy ever answers: the step limit ends the episode
    if which == "server":
        assert info["tool_calls"] == 5  # the scripted policy searched every step


def test_agent_completes_a_real_hotpotqa_episode(random_server):
    require_data("hotpotqa/hotpot_dev_distractor_subset.json.gz")
    require_data("wikipedia/hotpotqa_paragraphs.jsonl.gz")  # the search corpus
    agent = OpenAICompatAgent(random_server.base_url, "tiny", max_tokens=24)
    env = gym.make("SwirlHotpot-v0")
    obs, _ = env.reset(seed=0)
    done, steps = False, 0
    while not done:
        obs, _, terminated, truncated, _ = env.step(agent.act(obs))
        done, steps = terminated or truncated, steps + 1
    assert 1 <= steps <= 5


def test_aact_runs_in_the_callers_event_loop(server):
    agent = OpenAICompatAgent(server.base_url, "tiny", max_tokens=40, concurrency=2)

    async def main():
        steps = await asyncio.gather(*(agent.aact(c) for c in first_step_contexts()[:3]))
        await agent.aclose()
        return steps

    assert asyncio.run(main()) == [SEARCH_STEP] * 3


def test_generate_accepts_text_and_messages_and_keeps_the_stop(server):
    agent = OpenAICompatAgent(server.base_url, "tiny", max_tokens=40)
    messages = Context.parse(CONTEXT).messages()
    assert agent.generate([CONTEXT, messages], stop=["</search_query>"]) == [SEARCH_STEP, SEARCH_STEP]
    assert [r.text for r in agent.generate_results([CONTEXT], stop=["</search_query>"])] == [SEARCH_STEP]


# --- context length ----------------------------------------------------------------------------


def long_context(n_steps: int = 12) -> Context:
    """A QA context whose steps and results add up to well over 300 tokens of the tiny tokenizer."""
    context = Context.parse(CONTEXT)
    for i in range(n_steps):
        context = context.with_step(f"Step {i}. <search_query>query {i}</search_query>",
                                    f"Result {i}: " + "the river flows through the old capital city " * 4)
    return context


def test_a_context_over_the_servers_length_keeps_instructions_question_and_recent_steps(tiny_model_dir, monkeypatch):
    srv, _ = serve(tiny_model_dir, model_name="tiny", max_new_tokens=8, max_model_len=300)
    try:
        seen, complete = [], srv.agent.complete_ids
        monkeypatch.setattr(srv.agent, "complete_ids",
                            lambda texts, ids, **kw: seen.extend(zip(texts, ids)) or complete(texts, ids, **kw))
        context = long_context()
        agent = OpenAICompatAgent(srv.base_url, "tiny", chat=False, max_tokens=8)
        out = agent.step_batch([context.render(), CONTEXT])
        assert agent.context_limit() == 300
    finally:
        srv.shutdown()
        srv.server_close()
    assert [s.fault for s in out] == ["", ""]
    dropped = out[0].meta["context_cut"]["dropped_steps"]
    assert 0 < dropped < len(context.steps) and out[1].meta == {}
    text, ids = max(seen, key=lambda s: len(s[1]))
    assert text == fit_render(context, len(context.steps) - dropped)  # the instructions, question and last steps
    assert len(ids) + 8 <= 300


def fit_render(context: Context, keep: int) -> str:
    return Context(context.instructions, context.question, context.steps[-keep:]).render()


def test_a_context_length_refusal_shrinks_the_context_and_retries_once():
    """A server that reports no context length and has no /tokenize: its 400 names the limit; one retry fits."""
    def script(handler, request):
        if no_models(handler, request):
            return
        if request[2] == "/tokenize":
            return send(handler, 404, {"error": {"message": "not found"}})
        prompt = request[3]["prompt"]
        if len(prompt.encode()) > 2000:
            return send(handler, 400, {"error": {"message": "This model's maximum context length is 1000 tokens. "
                                                 "However, your prompt contains 1500 input tokens."}})
        send(handler, 200, {"choices": [{"text": "Done. <answer>x", "finish_reason": "stop"}]})

    with Misbehaving(script) as srv:
        context = long_context()
        out = OpenAICompatAgent(srv.url, "m", chat=False, max_tokens=16, backoff=0.01).step_batch([context.render()])
        prompts = [b["prompt"] for b in srv.posts("/v1/completions")]
    assert out[0].fault == "" and out[0].text == "Done. <answer>x</answer>"
    assert len(prompts) == 2 and prompts[0] == context.render()  # not retried blindly: shrunk once
    assert len(prompts[1].encode()) <= 1000 - 16 and prompts[1].startswith(context.render_start())
    assert prompts[1].endswith(context.steps[-1].result + "\n</result>\n\n")


def test_a_prompt_that_never_fits_is_a_fault_for_its_row_only(random_server):
    huge_question = Context("Answer.", "Why? " * 3000)  # its question alone is over the model's context
    agent = OpenAICompatAgent(random_server.base_url, "tiny", chat=False, max_tokens=4, temperature=0)
    out = agent.step_batch([CONTEXT, huge_question.render(), CONTEXT])
    assert out[0].fault == out[2].fault == "" and out[0].text == out[2].text
    assert random_server.base_url in out[1].fault and "maximum context length" in out[1].fault
    with pytest.raises(ServerError, match="maximum context length"):
        agent.act(huge_question.render())


# --- label log-probabilities -------------------------------------------------------------------


def test_label_logprobs_equal_a_direct_forward_pass(random_server):
    tokenizer, model = random_server.agent.tokenizer, random_server.agent.model
    prompt = first_step_contexts()[2]
    ids = tokenizer(prompt)["input_ids"]
    with torch.inference_mode():
        row = model(input_ids=torch.tensor([ids])).logits[0, -1].float().log_softmax(-1)
    top = row.topk(3).indices.tolist()
    first, second = (tokenizer.decode([t]) for t in top[:2])
    rare = "\u2603\u2603\u2603"  # no token of this vocabulary starts it
    agent = OpenAICompatAgent(random_server.base_url, "tiny")
    [scores] = agent.label_logprobs([prompt], [first, second, rare])
    assert scores[first] == pytest.approx(float(row[top[0]]), abs=1e-4)
    assert scores[second] == pytest.approx(float(row[top[1]]), abs=1e-4)
    assert scores[rare] == -math.inf


def test_a_label_of_two_tokens_is_followed_through_its_first(random_server):
    tokenizer, model = random_server.agent.tokenizer, random_server.agent.model
    prompt = first_step_contexts()[2]
    ids = tokenizer(prompt)["input_ids"]
    with torch.inference_mode():
        head = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        ids2 = tokenizer(prompt + tokenizer.decode([head]))["input_ids"]
        row = model(input_ids=torch.tensor([ids2])).logits[0, -1].float().log_softmax(-1)
        first = model(input_ids=torch.tensor([ids])).logits[0, -1].float().log_softmax(-1)[head]
    tail = int(row.argmax())
    label = tokenizer.decode([head]) + tokenizer.decode([tail])
    [scores] = OpenAICompatAgent(random_server.base_url, "tiny").label_logprobs([prompt], [label])
    one_path = float(first) + float(row[tail])
    assert one_path - 1e-4 <= scores[label] <= 0.0  # that tokenisation, plus any other the top lists hold


# --- failures, retries, deadlines, faults -------------------------------------------------------


def test_unreachable_server_fails_fast_with_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    agent = OpenAICompatAgent(f"http://127.0.0.1:{port}/v1", "m", timeout=2, max_retries=2, backoff=0.01)
    with pytest.raises(ServerError, match=rf"could not reach http://127.0.0.1:{port}/v1 after 2 tries: .*"
                                          r"Is the server running\? Start one with `python -m swirl_agents.serve"):
        agent.act(CONTEXT)


def test_a_dripping_server_cannot_hold_a_call_past_its_deadline():
    """One byte every 0.1 s of a 500-byte reply would take 50 s; each attempt must end at its 0.5 s deadline."""
    def script(handler, request):
        if no_models(handler, request):
            return
        handler.send_response(200)
        handler.send_header("Content-Length", "500")
        handler.end_headers()
        for _ in range(500):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.1)

    with Misbehaving(script) as srv:
        start = time.perf_counter()
        out = OpenAICompatAgent(srv.url, "m", timeout=0.5, max_retries=2, backoff=0.01).step_batch([CONTEXT])
        elapsed = time.perf_counter() - start
        assert len(srv.posts()) == 2  # the deadline is retried
    assert elapsed < 25  # half of one drip: the per-read timeout of httpx alone would have waited all 50 s
    assert srv.url in out[0].fault and "deadline" in out[0].fault and out[0].text == ""


def test_a_reply_that_is_not_json_is_retried_then_a_fault_naming_the_server():
    def script(handler, request):
        if not no_models(handler, request):
            send(handler, 200, b"<html>502 Bad Gateway</html>")

    with Misbehaving(script) as srv:
        agent = OpenAICompatAgent(srv.url, "m", max_retries=3, backoff=0.01)
        out = agent.step_batch([CONTEXT])
        assert len(srv.posts()) == 3
        with pytest.raises(ServerError, match="not JSON"):
            agent.generate(["Say hi."])
    assert f"{srv.url}/chat/completions failed after 3 tries: a reply that is not JSON" in out[0].fault


@pytest.mark.parametrize("body", [
    {"choices": []},
    {"choices": [{"message": {"role": "assistant", "content": 42}}]},
    {"choices": [{"message": {"role": "assistant", "content": ["a", "b"]}}]},
    {"choices": [{"message": {"role": "assistant"}}]},
    {"choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": 3}]},
    {"choices": "none"},
    {"result": "ok"},
    [1, 2, 3],
])
def test_a_malformed_reply_is_a_clear_fault_not_retried(body):
    def script(handler, request):
        if not no_models(handler, request):
            send(handler, 200, body)

    with Misbehaving(script) as srv:
        agent = OpenAICompatAgent(srv.url, "m", max_retries=3, backoff=0.01)
        out = agent.step_batch([CONTEXT])
        assert len(srv.posts()) == 1
        with pytest.raises(ServerError, match="malformed reply"):
            agent.act(CONTEXT)
        [result] = agent.generate_results(["Say hi."])
    assert out[0].fault.startswith(f"{srv.url}/chat/completions sent a malformed reply: expected ")
    assert result.fault.startswith(f"{srv.url}/completions sent a malformed reply")


@pytest.mark.parametrize("declared", [True, False])
def test_a_huge_reply_stops_at_the_size_cap(declared):
    """A 20 MB reply, with or without Content-Length: the read stops at the cap and the row gets a fault."""
    chunk = b"x" * (1 << 20)

    def script(handler, request):
        if no_models(handler, request):
            return
        handler.send_response(200)
        if declared:
            handler.send_header("Content-Length", str(20 * len(chunk)))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        for _ in range(20):
            handler.wfile.write(chunk)

    with Misbehaving(script) as srv:
        out = OpenAICompatAgent(srv.url, "m", max_response_bytes=100_000, max_retries=3).step_batch([CONTEXT])
        assert len(srv.posts()) == 1  # the same request would send the same flood
    assert srv.url in out[0].fault and "larger than max_response_bytes=100000" in out[0].fault


def test_retry_after_in_seconds_and_as_an_http_date_is_honoured_and_capped():
    def script(handler, request):
        if no_models(handler, request):
            return
        n = len(srv.posts())
        if n == 1:
            return send(handler, 429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
        if n == 2:  # a date two seconds ahead (whole seconds: more than one second away)
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return send(handler, 503, {"error": {"message": "busy"}}, {"Retry-After": when})
        if n == 3:  # an hour: capped at max_retry_after
            return send(handler, 503, {"error": {"message": "busy"}}, {"Retry-After": "3600"})
        send(handler, 200, chat_reply("<answer>4"))

    with Misbehaving(script) as srv:
        result: list = []
        agent = OpenAICompatAgent(srv.url, "m", backoff=0.01, max_retries=4, max_retry_after=1.0)
        caller = threading.Thread(target=lambda: result.append(agent.act(CONTEXT)), daemon=True)
        caller.start()
        caller.join(60)  # uncapped, it would sleep an hour
        times = [t for t, method, _, _ in srv.requests if method == "POST"]
    assert result == ["<answer>4</answer>"] and len(times) == 4
    assert all(b - a >= 0.95 for a, b in zip(times, times[1:]))  # never the 0.01 s backoff


def test_a_500_is_retried_until_the_server_answers():
    def script(handler, request):
        if no_models(handler, request):
            return
        if len(srv.posts()) < 3:
            return send(handler, 500, {"error": "boom"})
        send(handler, 200, chat_reply("Search.<search_query>x"))

    with Misbehaving(script) as srv:
        assert OpenAICompatAgent(srv.url, "m", max_retries=3, backoff=0.05).act(CONTEXT) == \
            "Search.<search_query>x</search_query>"
        times = [t for t, method, _, _ in srv.requests if method == "POST"]
        assert len(times) == 3 and times[2] - times[1] >= 0.09  # the backoff doubled
        srv.requests.clear()
        with pytest.raises(ServerError, match="failed after 2 tries: HTTP 500: boom"):
            OpenAICompatAgent(srv.url, "m", max_retries=2, backoff=0.01).act(CONTEXT)


def test_a_400_is_not_retried():
    def script(handler, request):
        if not no_models(handler, request):
            send(handler, 400, {"error": {"message": "unknown model"}})

    with Misbehaving(script) as srv:
        with pytest.raises(ServerError, match="rejected the request .*unknown model"):
            OpenAICompatAgent(srv.url, "m", max_retries=3, backoff=0.01).act(CONTEXT)
        assert len(srv.posts()) == 1


def test_one_failing_request_is_a_fault_for_its_row_and_the_others_are_answered():
    contexts = first_step_contexts()[:6]
    poisoned = Context.parse(contexts[3]).messages()

    def script(handler, request):
        if no_models(handler, request):
            return
        if request[3]["messages"] == poisoned:
            return send(handler, 500, {"error": {"message": "CUDA out of memory"}})
        send(handler, 200, chat_reply("<answer>4"))

    with Misbehaving(script) as srv:
        agent = OpenAICompatAgent(srv.url, "m", max_retries=2, backoff=0.01)
        out = agent.step_batch(contexts)
        with pytest.raises(ServerError, match="1 of 6 requests failed: .*CUDA out of memory"):
            agent.act_batch(contexts)
        results = agent.generate_results([Context.parse(contexts[0]).messages(), poisoned])
        with pytest.raises(ServerError, match="CUDA out of memory"):
            agent.generate([poisoned])
    assert [s.text for s in out] == ["<answer>4</answer>"] * 3 + [""] + ["<answer>4</answer>"] * 2
    assert [bool(s.fault) for s in out] == [False, False, False, True, False, False]
    assert out[3].fault == f"{srv.url}/chat/completions failed after 2 tries: HTTP 500: CUDA out of memory"
    assert [bool(r.fault) for r in results] == [False, True]


def test_concurrency_limit_is_respected():
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def script(handler, request):
        if no_models(handler, request):
            return
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        send(handler, 200, chat_reply("<answer>4"))

    with Misbehaving(script) as srv:
        steps = OpenAICompatAgent(srv.url, "m", concurrency=3).act_batch(first_step_contexts()[:10])
    assert steps == ["<answer>4</answer>"] * 10
    assert state["peak"] == 3


def test_restore_stop_uses_the_servers_stop_reason():
    stops = ["</search_query>", "</answer>"]
    assert restore_stop("<answer>4", "stop", stops, stop_reason="</answer>") == "<answer>4</answer>"
    assert restore_stop("<answer>4", "stop", stops, stop_reason=None) == "<answer>4"
    assert restore_stop("<answer>4</answer>", "stop", stops) == "<answer>4</answer>"
    assert restore_stop("<search_query>a</search_query> <answer>4", "stop", stops).endswith("4</answer>")
    assert restore_stop("no tag", "stop", stops) == "no tag"


def test_the_shipped_server_and_the_agent_agree_on_the_model_name(server):
    with pytest.raises(ServerError, match=r"rejected the request \(HTTP 404: The model 'other' does not exist"):
        OpenAICompatAgent(server.base_url, "other", max_retries=3).act(CONTEXT)
    assert httpx.get(server.base_url + "/models").json()["data"][0]["id"] == "tiny"
