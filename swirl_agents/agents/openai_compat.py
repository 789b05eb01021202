"""An agent (and text generator) for any OpenAI-compatible HTTP server: vLLM, SGLang, llama.cpp, swirl's own.

This is how generation scales past one machine: run a server per GPU and point many agents at it.
Requests run concurrently (asyncio + httpx, at most ``concurrency`` in flight), are retried with
exponential backoff on connection errors, timeouts, HTTP 429 and 5xx, and fail with a message that
says how to start a server.

Servers drop the stop string from the text they return; :func:`restore_stop` puts it back (from
vLLM's ``stop_reason`` when the server sends one, else by closing the action tag the text opened),
so a step reads exactly as it would from :class:`~swirl_agents.agents.hf.TransformersAgent`.
"""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from collections.abc import Coroutine, Sequence
from typing import Any

import httpx

from swirl_env.actions import STOP_STRINGS, truncate_at_action
from swirl_env.context import Context
from swirl_agents.agents.hf import Prompt, cut_at_stop

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_LAST_OPEN = re.compile(r"<(search_query|math_exp|answer)>(?!.*</\1>)", re.S)


class ServerError(ConnectionError):
    """The server could not be reached, or kept failing, after every retry."""


def restore_stop(text: str, finish_reason: str | None, stop: Sequence[str], stop_reason: Any = "") -> str:
    """Re-append the stop string a server removed, so the output ends just after it.

    ``stop_reason`` is vLLM's field: the matched stop string, or ``None`` for end-of-sequence;
    the default ``""`` means the server did not send one, and an action tag the text opened but
    did not close is closed when it is one of ``stop``.

    Example:
        >>> restore_stop("Look it up. <search_query>Paris", "stop", ["</search_query>", "</answer>"])
        'Look it up. <search_query>Paris</search_query>'
        >>> restore_stop("<answer>4", "stop", ["</answer>"], stop_reason=None)  # end-of-sequence
        '<answer>4'
        >>> restore_stop("<answer>4", "length", ["</answer>"])
        '<answer>4'
    """
    if finish_reason != "stop" or not stop or any(text.endswith(s) for s in stop if s):
        return text
    if stop_reason != "":
        return text + stop_reason if isinstance(stop_reason, str) and stop_reason in stop else text
    opened = _LAST_OPEN.search(text)
    if opened and f"</{opened.group(1)}>" in stop:
        return text + f"</{opened.group(1)}>"
    return text


def run_sync(coro: Coroutine) -> Any:
    """Run ``coro`` to completion from synchronous code, also when an event loop already runs (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = e

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


class OpenAICompatAgent:
    """A policy (and text generator) served over the OpenAI HTTP API.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: The served model name sent with each request.
        api_key: Sent as a bearer token when set.
        chat: ``/v1/chat/completions`` with the context as messages (``True``) or
            ``/v1/completions`` with the context string as the prompt.
        max_tokens, temperature, top_p: Generation settings for each step.
        concurrency: Most requests in flight at once.
        timeout: Seconds per request.
        max_retries: Tries per request before giving up.
        backoff: Seconds before the first retry, doubled after each.
        seed: Request ``i`` of this agent is sent with seed ``seed + i`` (reproducible on servers
            that honour it, while the samples of one context still differ).

    Example:
        >>> agent = OpenAICompatAgent("http://127.0.0.1:8000/v1", "my-model")
        >>> agent.name
        'openai:my-model'
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, chat: bool = True,
                 max_tokens: int = 256, temperature: float = 1.0, top_p: float = 1.0, concurrency: int = 16,
                 timeout: float = 60.0, max_retries: int = 3, backoff: float = 0.5, seed: int | None = None):
        if concurrency < 1 or max_retries < 1:
            raise ValueError(f"expected concurrency >= 1 and max_retries >= 1, actual {concurrency}, {max_retries}")
        self.base_url, self.model, self.name = base_url.rstrip("/"), model, f"openai:{model}"
        self.chat, self.max_tokens, self.temperature, self.top_p = chat, max_tokens, temperature, top_p
        self.concurrency, self.timeout, self.max_retries, self.backoff = concurrency, timeout, max_retries, backoff
        self.seed, self._requests = seed, 0
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # --- the agent ---------------------------------------------------------------------------

    def act(self, observation: str) -> str:
        """The next step for one context."""
        return self.act_batch([observation])[0]

    async def aact(self, observation: str) -> str:
        """The next step for one context, awaitable; concurrent calls share the ``concurrency`` limit."""
        client, sem = self._loop_client()
        return await self._step(client, sem, observation, self._next_seed())

    async def aclose(self) -> None:
        """Close the HTTP client that :meth:`aact` keeps for the running event loop."""
        state = self._per_loop.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state[0].aclose()

    def act_batch(self, observations: Sequence[str]) -> list[str]:
        """The next step for each context, with up to ``concurrency`` requests in flight."""
        seeds = [self._next_seed() for _ in observations]
        return run_sync(self._batch(lambda c, s, i: self._step(c, s, observations[i], seeds[i]), len(observations)))

    # --- the text generator ------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int | None = None,
                 stop: Sequence[str] | None = None) -> list[str]:
        """Continue each prompt: a string via ``/v1/completions``, chat messages via ``/v1/chat/completions``.

        Each output is cut just after the first of ``stop`` (kept in the output).
        """
        seeds = [self._next_seed() for _ in prompts]

        async def one(client: httpx.AsyncClient, sem: asyncio.Semaphore, i: int) -> str:
            return await self._complete(client, sem, prompts[i], max_new_tokens or self.max_tokens,
                                        list(stop or ()), seeds[i])

        return run_sync(self._batch(one, len(prompts)))

    # --- internals -----------------------------------------------------------------------------

    def _next_seed(self) -> int | None:
        self._requests += 1
        return None if self.seed is None else self.seed + self._requests - 1

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, headers=self._headers,
                                 limits=httpx.Limits(max_connections=self.concurrency))

    def _loop_client(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if loop not in self._per_loop:
            self._per_loop[loop] = (self._new_client(), asyncio.Semaphore(self.concurrency))
        return self._per_loop[loop]

    async def _batch(self, one: Any, n: int) -> list[Any]:
        sem = asyncio.Semaphore(self.concurrency)
        async with self._new_client() as client:
            return list(await asyncio.gather(*(one(client, sem, i) for i in range(n))))

    async def _step(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, observation: str,
                    seed: int | None) -> str:
        prompt: Prompt = Context.parse(observation).messages() if self.chat else observation
        return truncate_at_action(await self._complete(client, sem, prompt, self.max_tokens, list(STOP_STRINGS), seed))

    async def _complete(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, prompt: Prompt,
                        max_tokens: int, stop: list[str], seed: int | None) -> str:
        chat = not isinstance(prompt, str)
        payload: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "temperature": self.temperature,
                                   "top_p": self.top_p, "n": 1, ("messages" if chat else "prompt"): prompt}
        if stop:
            payload["stop"] = stop
        if seed is not None:
            payload["seed"] = seed
        body = await self._post(client, sem, "/chat/completions" if chat else "/completions", payload)
        try:
            choice = body["choices"][0]
            text = (choice["message"]["content"] if chat else choice["text"]) or ""
        except (KeyError, IndexError, TypeError) as e:
            raise ServerError(f"expected an OpenAI response with choices[0], actual {str(body)[:300]}") from e
        text = restore_stop(text, choice.get("finish_reason"), stop, choice.get("stop_reason", ""))
        return cut_at_stop(text, stop)[0]

    async def _post(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, path: str, payload: dict) -> dict:
        url, problem, reached = self.base_url + path, "", False
        for attempt in range(self.max_retries):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                async with sem:
                    response = await client.post(url, json=payload)
            except httpx.TransportError as e:  # connection refused, timeouts, dropped connections
                problem = f"{type(e).__name__}: {e}".rstrip(": ")
                continue
            reached = True
            if response.status_code < 400:
                return response.json()
            problem = f"HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code not in RETRY_STATUS:
                raise ServerError(f"{url} rejected the request ({problem}); check the model name and settings")
        if reached:
            raise ServerError(f"{url} failed after {self.max_retries} tries: {problem}")
        raise ServerError(f"could not reach {self.base_url} after {self.max_retries} tries: {problem}. Is the server "
                          "running? Start one with `python -m swirl_agents.serve --model PATH`")
