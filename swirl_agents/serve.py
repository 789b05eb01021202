"""Serve any transformers causal LM over the OpenAI HTTP API (stdlib only), for agents and judges.

    python -m swirl_agents.serve --model PATH --port 8000 [--max-model-len 2048]

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /v1/models/{id}``, ``POST /tokenize`` (as vLLM's: ``count``, ``tokens``, ``max_model_len``),
``GET /health``. Requests arriving together with the same settings run as one batch on the model
(one worker thread owns the model and the tokenizer); a request with a ``seed`` runs alone so its
output does not depend on its neighbours. As with OpenAI, returned text excludes the stop string;
``stop_reason`` (as in vLLM) names it. A model without a chat template serves swirl contexts sent as
chat messages by rendering them back to the canonical context, the prompt
:class:`~swirl_agents.agents.hf.TransformersAgent` would use.

The server tells the truth about what it does: a parameter it does not honour (``n`` > 1,
``best_of`` > 1, ``stream``, ``top_k``, penalties...) is refused with HTTP 400 naming it, a wrong
``model`` with 404, and a prompt longer than ``max_model_len`` (reported by ``/v1/models``) with
400 and OpenAI's "maximum context length" message. ``logprobs`` (completions: OpenAI's legacy
``tokens``/``token_logprobs``/``top_logprobs``; chat: ``logprobs`` + ``top_logprobs``) are the
model's raw log-probabilities (before temperature and ``top_p``) of the sampled tokens, from one
forward pass over prompt and completion; ``echo`` (completions) returns the prompt with the
completion, and with ``max_tokens: 0`` scores a prompt without generating.

For production-scale generation use vLLM or SGLang; this server is for tests, laptops and small GPUs.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from swirl_env.context import Context
from swirl_agents.agents.hf import Completion, TransformersAgent
from swirl_agents.prompting import encode_text, has_chat_template
from swirl_agents.serve_requests import (  # noqa: F401 - PARAMETERS, RequestError, ... are this module's API too
    MAX_LOGPROBS, PARAMETERS, RequestError, check_parameters, request_settings, requested_logprobs,
)

@dataclass(frozen=True)
class Job:
    """One prompt to run: what the worker thread needs to tokenise, generate and score it."""

    text: str
    templated: bool
    """Rendered by a chat template (tokenised without added special tokens)."""
    settings: dict[str, Any]
    """:meth:`TransformersAgent.complete_ids` arguments (``max_new_tokens`` 0: score only, with echo)."""
    logprobs: int | None = None
    """Alternatives per token to report, ``None`` for no log-probabilities."""
    echo: bool = False


@dataclass(frozen=True)
class Result:
    """What the worker made of a :class:`Job`."""

    completion: Completion
    prompt_ids: list[int]
    scores: list[tuple[int, float | None, list[tuple[int, float]]]] | None = None
    """Per token (the prompt's with echo, then the completion's): id, log-probability, top alternatives."""


class Batcher:
    """One worker thread owns the model: queued jobs that share a key run as one batch, calls run alone."""

    def __init__(self, run: Callable[[list[Any]], list[Any]], max_batch: int = 16):
        self.run, self.max_batch = run, max_batch
        self._queue: queue.Queue = queue.Queue()
        self._held: list[tuple] = []
        threading.Thread(target=self._work, daemon=True, name="swirl-serve-model").start()

    def submit(self, key: tuple, job: Any) -> Future:
        """Queue one job; the future's result is what ``run`` returns for it (an exception is raised)."""
        future: Future = Future()
        self._queue.put((key, job, future))
        return future

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn()`` on the worker thread (the only one that touches the model and tokenizer)."""
        return self.submit(("call", uuid.uuid4().hex), fn)

    def close(self) -> None:
        """Stop the worker once the queued requests are done."""
        self._queue.put(None)

    def _take(self) -> list[tuple] | None:
        """The next batch: the oldest item and the queued ones with its key; ``None`` to stop."""
        items = self._held or [self._queue.get()]
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if None in items:
            for it in items:
                if it is not None:
                    it[2].set_exception(RuntimeError("the server is shutting down"))
            return None
        batch = [it for it in items if it[0] == items[0][0]][: self.max_batch]
        self._held = [it for it in items if not any(it is b for b in batch)]
        return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            try:
                out = [batch[0][1]()] if batch[0][0][0] == "call" else self.run([b[1] for b in batch])
            except Exception as e:  # noqa: BLE001 - reported to each waiting request as a 500
                out = [e] * len(batch)
            for (_, _, future), result in zip(batch, out):
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def score_tokens(model: Any, ids: list[int], start: int, k: int) -> list[tuple[int, float, list[tuple[int, float]]]]:
    """For each position ``p >= start`` of ``ids``: its id, ``log P(ids[p] | ids[:p])`` and the ``k`` likeliest ids.

    One forward pass; the log-probabilities are the model's raw ones (no temperature, no ``top_p``).
    """
    import torch

    if not 1 <= start <= len(ids):
        raise ValueError(f"expected 1 <= start <= {len(ids)}, actual {start}")
    if start == len(ids):
        return []
    with torch.inference_mode():
        x = torch.tensor([ids], device=model.device)
        logits = model(input_ids=x, logits_to_keep=len(ids) - start + 1).logits[0, :-1].float()  # (T, V)
        logprobs = logits.log_softmax(-1)
        chosen = logprobs.gather(1, x[0, start:, None])[:, 0]  # (T,)
        top = logprobs.topk(k, dim=-1) if k else None
    out = []
    for i, token in enumerate(ids[start:]):
        alternatives = list(zip(top.indices[i].tolist(), top.values[i].tolist())) if top is not None else []
        out.append((token, float(chosen[i]), alternatives))
    return out


class ModelServer(ThreadingHTTPServer):
    """The HTTP server: request parsing and OpenAI response shapes around a :class:`Batcher`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], agent: TransformersAgent, *, model_name: str | None = None,
                 max_batch: int = 16, default_max_tokens: int = 256, max_model_len: int | None = None,
                 verbose: bool = False):
        super().__init__(address, _Handler)
        self.agent, self.batcher = agent, Batcher(self.run_jobs, max_batch)
        self.model_name = model_name or agent.name.removeprefix("transformers:")
        cfg = agent.model.config
        positions = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        if max_model_len is not None and (max_model_len < 2 or (positions and max_model_len > positions)):
            raise ValueError(f"expected 2 <= max_model_len <= {positions} (the model's positions), "
                             f"actual {max_model_len}")
        self.max_model_len = max_model_len or positions or 1 << 20
        self.default_max_tokens, self.verbose = default_max_tokens, verbose

    def server_close(self) -> None:
        super().server_close()
        self.batcher.close()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def model_card(self) -> dict:
        return {"id": self.model_name, "object": "model", "created": 0, "owned_by": "swirl",
                "max_model_len": self.max_model_len}

    def check_model(self, body: dict) -> None:
        """404 (OpenAI's ``model_not_found``) unless the request names this server's model or none."""
        name = body.get("model")
        if name is not None and name != self.model_name:
            raise RequestError(f"The model {name!r} does not exist: this server serves {self.model_name!r} "
                               "(GET /v1/models)", status=404, code="model_not_found", param="model")

    def chat_prompt(self, messages: Any) -> str:
        if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                     for m in messages):
            raise RequestError("expected 'messages' to be a list of {role, content} objects with string contents",
                               param="messages")
        tokenizer = self.agent.tokenizer
        if has_chat_template(tokenizer):
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        try:
            return Context.from_messages(messages).render()
        except (ValueError, KeyError, IndexError) as e:
            raise RequestError(f"expected 'messages' to be a swirl context, as the model has no chat template ({e}); "
                               "use /v1/completions with a prompt string", param="messages") from e

    def prompts(self, path: str, body: dict) -> tuple[list[str], bool]:
        """The prompt texts of a request and whether a chat template rendered them."""
        if path == "/v1/chat/completions":
            return [self.chat_prompt(body.get("messages"))], has_chat_template(self.agent.tokenizer)
        prompts = body.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise RequestError(f"expected 'prompt' to be a string or a list of strings, actual {prompts!r}"[:300],
                               param="prompt")
        return prompts, False

    def encode(self, text: str, templated: bool) -> list[int]:
        """Prompt ids as :class:`TransformersAgent` makes them (a template writes its own BOS); worker thread only."""
        return encode_text(self.agent.tokenizer, text, first=True, chat=templated)

    def length_error(self, n_prompt: int, n_new: int) -> RequestError | None:
        """OpenAI's context-length refusal when a prompt and its completion do not fit ``max_model_len``."""
        if n_prompt == 0:
            return RequestError("expected a prompt of at least one token, actual an empty prompt", param="prompt")
        if n_prompt + n_new <= self.max_model_len:
            return None
        return RequestError(f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                            f"requested {n_prompt + n_new} tokens ({n_prompt} in the prompt, {n_new} for the "
                            "completion). Please reduce the length of the prompt or max_tokens.",
                            code="context_length_exceeded", param="max_tokens")

    def run_jobs(self, jobs: list[Job]) -> list[Result | Exception]:
        """Tokenise, check, generate and score a batch of jobs that share settings (on the worker thread)."""
        settings = jobs[0].settings
        ids = [self.encode(j.text, j.templated) for j in jobs]
        out: list[Result | Exception | None] = [self.length_error(len(x), settings["max_new_tokens"]) for x in ids]
        todo = [i for i, e in enumerate(out) if e is None]
        if settings["max_new_tokens"] == 0 or not todo:  # echo only: score the prompt, generate nothing
            made = [Completion("", "length", None, len(ids[i]), 0) for i in todo]
        else:
            made = self.agent.complete_ids([jobs[i].text for i in todo], [ids[i] for i in todo], **settings)
        for i, c in zip(todo, made):
            job, scores = jobs[i], None
            if job.logprobs is not None:
                start = 1 if job.echo else len(ids[i])
                scores = score_tokens(self.agent.model, ids[i] + list(c.token_ids), start, job.logprobs)
                if job.echo:  # the first prompt token has no log-probability
                    scores.insert(0, (ids[i][0], None, []))
            out[i] = Result(c, ids[i], scores)
        return out  # type: ignore[return-value]

    def tokenize(self, body: dict) -> dict:
        """``POST /tokenize`` as vLLM answers it: the prompt (or chat messages) as the server would tokenise it."""
        self.check_model(body)
        path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
        texts, templated = self.prompts(path, body)
        if len(texts) != 1:
            raise RequestError("expected one 'prompt' string to tokenize", param="prompt")
        ids = self.batcher.call(lambda: self.encode(texts[0], templated)).result()
        return {"count": len(ids), "max_model_len": self.max_model_len, "tokens": ids}

    def handle_post(self, path: str, body: dict) -> dict:
        check_parameters(path, body)
        self.check_model(body)
        chat = path == "/v1/chat/completions"
        settings = request_settings(body, self.default_max_tokens)
        echo = body.get("echo") is True
        k = requested_logprobs(path, body)
        texts, templated = self.prompts(path, body)
        key = tuple(sorted((name, tuple(v) if isinstance(v, list) else v) for name, v in settings.items()))
        if settings["seed"] is not None:
            key += (uuid.uuid4().hex,)  # never batched with another request
        created = int(time.time())
        futures = [self.batcher.submit(key, Job(t, templated, settings, k, echo)) for t in texts]
        results: list[Result] = [f.result() for f in futures]
        choices = [self._choice(i, r, chat, t if echo else "") for i, (r, t) in enumerate(zip(results, texts))]
        usage = {"prompt_tokens": sum(r.completion.prompt_tokens for r in results),
                 "completion_tokens": sum(r.completion.completion_tokens for r in results)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
                "object": "chat.completion" if chat else "text_completion", "created": created,
                "model": self.model_name, "choices": choices, "usage": usage}

    def _choice(self, index: int, r: Result, chat: bool, echoed: str) -> dict:
        c = r.completion
        text = c.text[: len(c.text) - len(c.stop)] if c.stop else c.text  # OpenAI returns text without the stop
        out: dict[str, Any] = {"index": index, "finish_reason": c.finish_reason, "stop_reason": c.stop}
        decode = self._token_text
        if chat:
            out["message"] = {"role": "assistant", "content": text}
            out["logprobs"] = None if r.scores is None else {"content": [
                {"token": decode(t), "logprob": lp, "bytes": list(decode(t).encode()),
                 "top_logprobs": [{"token": decode(a), "logprob": alp, "bytes": list(decode(a).encode())}
                                  for a, alp in top]} for t, lp, top in r.scores]}
        else:
            out.update(text=echoed + text, logprobs=None if r.scores is None else _legacy_logprobs(r.scores, decode))
        return out

    def _token_text(self, token: int) -> str:
        return self.agent.tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _legacy_logprobs(scores: list[tuple[int, float | None, list[tuple[int, float]]]],
                     decode: Callable[[int], str]) -> dict:
    """OpenAI's legacy completions ``logprobs`` object; each ``top_logprobs`` entry includes the chosen token."""
    tokens = [decode(t) for t, _, _ in scores]
    offsets, at = [], 0
    for s in tokens:
        offsets.append(at)
        at += len(s)
    tops = [None if lp is None else {decode(a): alp for a, alp in [*top, (t, lp)]} for t, lp, top in scores]
    return {"tokens": tokens, "token_logprobs": [lp for _, lp, _ in scores], "top_logprobs": tops,
            "text_offset": offsets}


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.rstrip("/")
        if path == "/health":
            return self._send(200, {"status": "ok"})
        if path == "/v1/models":
            return self._send(200, {"object": "list", "data": [self.server.model_card()]})
        if path.startswith("/v1/models/"):
            name = path.removeprefix("/v1/models/")
            if name == self.server.model_name:
                return self._send(200, self.server.model_card())
            return self._error(RequestError(f"The model {name!r} does not exist: this server serves "
                                            f"{self.server.model_name!r}", 404, "model_not_found", "model"))
        self._error(RequestError(f"expected GET /health, /v1/models or /v1/models/{{id}}, actual GET {self.path}", 404))

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.rstrip("/")
        if path not in (*PARAMETERS, "/tokenize"):
            return self._error(RequestError("expected POST /v1/chat/completions, /v1/completions or /tokenize, "
                                            f"actual POST {self.path}", 404))
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            if not isinstance(body, dict):
                raise RequestError(f"expected a JSON object body, actual {type(body).__name__}")
            self._send(200, self.server.tokenize(body) if path == "/tokenize" else self.server.handle_post(path, body))
        except RequestError as e:
            self._error(e)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
            self._error(RequestError(str(e)))
        except Exception as e:  # noqa: BLE001 - a failed generation must not take the server down
            self._error(RequestError(f"{type(e).__name__}: {e}", 500))

    def _error(self, e: RequestError) -> None:
        kind = "invalid_request_error" if e.status < 500 else "server_error"
        self._send(e.status, {"error": {"message": str(e), "type": kind, "param": e.param, "code": e.code}})

    def _send(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        if self.server.verbose:
            super().log_message(format, *args)


def serve(model: Any, host: str = "127.0.0.1", port: int = 0, *, model_name: str | None = None,
          max_batch: int = 16, default_max_tokens: int = 256, max_model_len: int | None = None,
          verbose: bool = False, **agent_kw: Any) -> tuple[ModelServer, threading.Thread]:
    """Start a server in a background thread; ``port=0`` picks a free port (see ``server.base_url``).

    ``model`` is a path, a model id or a ready :class:`TransformersAgent`; ``agent_kw`` goes to
    ``TransformersAgent``. ``max_model_len`` (default: the model's positions) caps prompt plus
    completion. Stop with ``server.shutdown(); server.server_close()``.

    Example:
        >>> import tempfile, httpx
        >>> from swirl_agents.tiny import make_tiny_policy
        >>> path = make_tiny_policy(tempfile.mkdtemp(), ["Question: Who? <answer>x</answer>"] * 5,
        ...                         vocab_size=300, n_layer=1, n_embd=32, n_head=2)
        >>> server, thread = serve(path, model_name="tiny", max_model_len=64)
        >>> httpx.get(server.base_url.removesuffix("/v1") + "/health").json()
        {'status': 'ok'}
        >>> httpx.get(server.base_url + "/models/tiny").json()["max_model_len"]
        64
        >>> httpx.post(server.base_url + "/completions", json={"model": "tiny", "prompt": "Who?", "n": 2}).status_code
        400
        >>> server.shutdown(); server.server_close()
    """
    agent = model if isinstance(model, TransformersAgent) else TransformersAgent(model, **agent_kw)
    server = ModelServer((host, port), agent, model_name=model_name, max_batch=max_batch,
                         default_max_tokens=default_max_tokens, max_model_len=max_model_len, verbose=verbose)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="swirl-serve-http")
    thread.start()
    return server, thread


def main(argv: list[str] | None = None) -> None:
    """The command line: ``python -m swirl_agents.serve --model PATH [--port 8000]``."""
    p = argparse.ArgumentParser(prog="python -m swirl_agents.serve", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model folder, named model or Hugging Face id")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    p.add_argument("--served-model-name", default=None, help="name reported by /v1/models (default: --model)")
    p.add_argument("--max-batch", type=int, default=16, help="most requests generated together")
    p.add_argument("--max-tokens", type=int, default=256, help="max_tokens when a request does not say")
    p.add_argument("--max-model-len", type=int, default=None,
                   help="most prompt + completion tokens (default: the model's positions)")
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: the checkpoint's)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    a = p.parse_args(argv)
    server, thread = serve(a.model, a.host, a.port, model_name=a.served_model_name, max_batch=a.max_batch,
                           default_max_tokens=a.max_tokens, max_model_len=a.max_model_len, verbose=a.verbose,
                           device=a.device, dtype=a.dtype, batch_size=a.max_batch)
    print(f"serving {server.model_name} at {server.base_url} (max_model_len {server.max_model_len}; Ctrl-C to stop)",
          flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
