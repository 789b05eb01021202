"""Serve any transformers causal LM over the OpenAI HTTP API (stdlib only), for agents and judges.

    python -m swirl_agents.serve --model PATH --port 8000

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /health``. Requests arriving together with the same settings run as one batch on the model
(one worker thread owns it); a request with a ``seed`` runs alone so its output does not depend on
its neighbours. As with OpenAI, returned text excludes the stop string; ``stop_reason`` (as in
vLLM) names it. A model without a chat template serves swirl contexts sent as chat messages by
rendering them back to the canonical context, the prompt :class:`TransformersAgent` would use.

For production-scale generation use vLLM or SGLang; this server is for tests, laptops and small GPUs.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from swirl_env.context import Context
from swirl_agents.agents.hf import Completion, TransformersAgent
from swirl_agents.prompting import has_chat_template


class RequestError(ValueError):
    """A bad request: answered with HTTP 400 and the message."""


class Batcher:
    """One worker thread owns the model and runs queued requests that share settings as one batch."""

    def __init__(self, agent: TransformersAgent, max_batch: int = 16):
        self.agent, self.max_batch = agent, max_batch
        self._queue: queue.Queue = queue.Queue()
        self._held: list[tuple] = []
        threading.Thread(target=self._work, daemon=True, name="swirl-serve-model").start()

    def submit(self, text: str, templated: bool, settings: dict[str, Any]) -> Future:
        """Queue one prompt; the future's result is its :class:`Completion`."""
        future: Future = Future()
        key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in settings.items()))
        if settings.get("seed") is not None:
            key += (uuid.uuid4().hex,)  # never batched with another request
        self._queue.put((key, text, templated, settings, future))
        return future

    def close(self) -> None:
        """Stop the worker once the queued requests are done."""
        self._queue.put(None)

    def _take(self) -> list[tuple] | None:
        """The next batch: the oldest request and the queued ones with its settings; ``None`` to stop."""
        items = self._held or [self._queue.get()]
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if None in items:
            for it in items:
                if it is not None:
                    it[4].set_exception(RuntimeError("the server is shutting down"))
            return None
        batch = [it for it in items if it[0] == items[0][0]][: self.max_batch]
        self._held = [it for it in items if not any(it is b for b in batch)]
        return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            settings = batch[0][3]
            try:
                out = self.agent.complete([b[1] for b in batch], templated=[b[2] for b in batch], **settings)
            except Exception as e:  # noqa: BLE001 - reported to each waiting request as a 500
                for b in batch:
                    b[4].set_exception(e)
            else:
                for b, c in zip(batch, out):
                    b[4].set_result(c)


def _number(body: dict, key: str, default: Any, kind: type, low: float, high: float) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and int(value) != value):
        raise RequestError(f"expected '{key}' to be a {kind.__name__}, actual {value!r}")
    if not low <= value <= high:
        raise RequestError(f"expected '{key}' in [{low}, {high}], actual {value}")
    return kind(value)


def request_settings(body: dict, default_max_tokens: int) -> dict[str, Any]:
    """Validate the OpenAI sampling fields and map them to :meth:`TransformersAgent.complete` arguments."""
    if body.get("stream"):
        raise RequestError("expected 'stream' false, actual true: this server does not stream")
    if _number(body, "n", 1, int, 1, 1) != 1:
        raise RequestError("expected 'n' = 1")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError(f"expected 'stop' to be a string or a list of strings, actual {stop!r}")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    temperature = _number(body, "temperature", 1.0, float, 0.0, 2.0)
    return {
        "max_new_tokens": _number({"max_tokens": max_tokens}, "max_tokens", default_max_tokens, int, 1, 1 << 20),
        "temperature": temperature,
        "do_sample": temperature > 0,
        "top_p": _number(body, "top_p", 1.0, float, 1e-9, 1.0),
        "stop": stop,
        "seed": _number(body, "seed", None, int, -(1 << 63), (1 << 63) - 1),
    }


class ModelServer(ThreadingHTTPServer):
    """The HTTP server: request parsing and OpenAI response shapes around a :class:`Batcher`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], agent: TransformersAgent, *, model_name: str | None = None,
                 max_batch: int = 16, default_max_tokens: int = 256, verbose: bool = False):
        super().__init__(address, _Handler)
        self.agent, self.batcher = agent, Batcher(agent, max_batch)
        self.model_name = model_name or agent.name.removeprefix("transformers:")
        self.default_max_tokens, self.verbose = default_max_tokens, verbose

    def server_close(self) -> None:
        super().server_close()
        self.batcher.close()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def chat_prompt(self, messages: Any) -> str:
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "content" in m for m in messages):
            raise RequestError("expected 'messages' to be a list of {role, content} objects")
        tokenizer = self.agent.tokenizer
        if has_chat_template(tokenizer):
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        try:
            return Context.from_messages(messages).render()
        except (ValueError, KeyError, IndexError) as e:
            raise RequestError(f"the model has no chat template and the messages are not a swirl context ({e}); "
                               "use /v1/completions with a prompt string") from e

    def handle_post(self, path: str, body: dict) -> dict:
        settings = request_settings(body, self.default_max_tokens)
        created, chat = int(time.time()), path == "/v1/chat/completions"
        if chat:
            prompts, templated = [self.chat_prompt(body.get("messages"))], has_chat_template(self.agent.tokenizer)
        else:
            prompts = body.get("prompt")
            prompts = [prompts] if isinstance(prompts, str) else prompts
            if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
                raise RequestError(f"expected 'prompt' to be a string or a list of strings, actual {prompts!r}"[:300])
            templated = False
        futures = [self.batcher.submit(p, templated, settings) for p in prompts]
        results: list[Completion] = [f.result() for f in futures]
        choices = [_choice(i, c, chat) for i, c in enumerate(results)]
        usage = {"prompt_tokens": sum(c.prompt_tokens for c in results),
                 "completion_tokens": sum(c.completion_tokens for c in results)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
                "object": "chat.completion" if chat else "text_completion", "created": created,
                "model": self.model_name, "choices": choices, "usage": usage}


def _choice(index: int, c: Completion, chat: bool) -> dict:
    text = c.text[: len(c.text) - len(c.stop)] if c.stop else c.text  # OpenAI returns text without the stop
    out: dict[str, Any] = {"index": index, "finish_reason": c.finish_reason, "stop_reason": c.stop}
    if chat:
        out["message"] = {"role": "assistant", "content": text}
    else:
        out.update(text=text, logprobs=None)
    return out


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") == "/health":
            return self._send(200, {"status": "ok"})
        if self.path.rstrip("/") == "/v1/models":
            return self._send(200, {"object": "list", "data": [
                {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "swirl"}]})
        self._error(404, f"expected GET /health or /v1/models, actual GET {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/completions"):
            return self._error(404, f"expected POST /v1/chat/completions or /v1/completions, actual POST {self.path}")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            if not isinstance(body, dict):
                raise RequestError(f"expected a JSON object body, actual {type(body).__name__}")
            self._send(200, self.server.handle_post(path, body))
        except (RequestError, json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
            self._error(400, str(e))
        except Exception as e:  # noqa: BLE001 - a failed generation must not take the server down
            self._error(500, f"{type(e).__name__}: {e}")

    def _error(self, code: int, message: str) -> None:
        kind = "invalid_request_error" if code < 500 else "server_error"
        self._send(code, {"error": {"message": message, "type": kind, "code": code}})

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
          max_batch: int = 16, default_max_tokens: int = 256, verbose: bool = False,
          **agent_kw: Any) -> tuple[ModelServer, threading.Thread]:
    """Start a server in a background thread; ``port=0`` picks a free port (see ``server.base_url``).

    ``model`` is a path, a model id or a ready :class:`TransformersAgent`; ``agent_kw`` goes to
    ``TransformersAgent``. Stop with ``server.shutdown(); server.server_close()``.

    Example:
        >>> import tempfile, httpx
        >>> from swirl_agents.tiny import make_tiny_policy
        >>> path = make_tiny_policy(tempfile.mkdtemp(), ["Question: Who? <answer>x</answer>"] * 5,
        ...                         vocab_size=300, n_layer=1, n_embd=32, n_head=2)
        >>> server, thread = serve(path)
        >>> httpx.get(server.base_url.removesuffix("/v1") + "/health").json()
        {'status': 'ok'}
        >>> server.shutdown(); server.server_close()
    """
    agent = model if isinstance(model, TransformersAgent) else TransformersAgent(model, **agent_kw)
    server = ModelServer((host, port), agent, model_name=model_name, max_batch=max_batch,
                         default_max_tokens=default_max_tokens, verbose=verbose)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="swirl-serve-http")
    thread.start()
    return server, thread


def main(argv: list[str] | None = None) -> None:
    """The command line: ``python -m swirl_agents.serve --model PATH [--port 8000]``."""
    p = argparse.ArgumentParser(prog="python -m swirl_agents.serve", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model folder or Hugging Face id")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    p.add_argument("--served-model-name", default=None, help="name reported by /v1/models (default: --model)")
    p.add_argument("--max-batch", type=int, default=16, help="most requests generated together")
    p.add_argument("--max-tokens", type=int, default=256, help="max_tokens when a request does not say")
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: the checkpoint's)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    a = p.parse_args(argv)
    server, thread = serve(a.model, a.host, a.port, model_name=a.served_model_name, max_batch=a.max_batch,
                           default_max_tokens=a.max_tokens, verbose=a.verbose, device=a.device, dtype=a.dtype,
                           batch_size=a.max_batch)
    print(f"serving {server.model_name} at {server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
