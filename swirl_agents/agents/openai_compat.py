"""An agent (and text generator) for any OpenAI-compatible HTTP server: vLLM, SGLang, llama.cpp, swirl's own.

This is how generation scales past one machine: run a server per GPU and point many agents at it.
Requests run concurrently (asyncio + httpx, at most ``concurrency`` in flight). Each HTTP attempt
has a wall-clock deadline (``timeout``: connecting, waiting and reading the whole reply, so a server
that drips bytes cannot hold a call open) and a size cap (``max_response_bytes``, read as a stream
that stops at the cap). Connection errors, deadlines, HTTP 408/409/429/5xx and replies that are not
JSON are retried with exponential backoff, or after the server's ``Retry-After`` (capped at
``max_retry_after``); any other malformed reply (wrong types, missing fields, no choices) and any
other 4xx fail at once. Every failure is a :class:`ServerError` naming the server URL.

A request that still fails does not end a run: :meth:`OpenAICompatAgent.step_batch` gives that row
``StepOutput(text="", fault=...)`` (the rollout records it and goes on) and
:meth:`~OpenAICompatAgent.generate_results` does the same for judges; ``act``, ``act_batch`` and
``generate`` raise for direct callers.

**Context length.** The agent asks the server for its context length (``max_model_len`` in
``GET /v1/models``, as vLLM and swirl's server report it). A context that would not fit with
``max_tokens`` more keeps its instructions, its question and its most recent steps, the oldest
dropped first (measured with the server's ``POST /tokenize`` when it has one, else with a
conservative character estimate); a server that still answers HTTP 400 "maximum context length"
gets the context shrunk to a byte-safe size and retried once. What was dropped is recorded in the
step's ``meta["context_cut"]``.

Servers drop the stop string from the text they return; :func:`restore_stop` puts it back (from
vLLM's ``stop_reason`` when the server sends one, else by closing the action tag the text opened),
so a step reads exactly as it would from :class:`~swirl_agents.agents.hf.TransformersAgent`.

The protocol's pure parts (reply parsing, ``Retry-After``, token estimates, context fitting) live in
:mod:`swirl_agents.agents.openai_wire`; their public names are importable from here as well.
"""

from __future__ import annotations

import asyncio
import json
import math
import weakref
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from swirl_env.actions import STOP_STRINGS, truncate_at_action
from swirl_env.context import Context
from swirl_agents.agents.base import StepOutput
from swirl_agents.agents.hf import Prompt, cut_at_stop
from swirl_agents.agents.openai_wire import (  # noqa: F401 - ServerError, restore_stop, ... are this module's API too
    CONTEXT_ERROR, LABEL_ALTERNATIVES, RETRY_STATUS, ContextTooLong, ServerError, _error_message, _LIMIT_IN_MESSAGE,
    _model_limit, _token_count, _Transient, choice_text, estimate_tokens, fit_context, next_token_alternatives,
    restore_stop, retry_after_seconds, run_sync,
)


@dataclass
class _Session:
    """One event loop's HTTP client, its limit on requests in flight, and a lock for asking the server once."""

    client: httpx.AsyncClient
    slots: asyncio.Semaphore
    probe: asyncio.Lock = field(default_factory=asyncio.Lock)


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
        timeout: Wall-clock seconds for one HTTP attempt, reply included. A request takes at most
            ``max_retries * timeout`` plus the waits between attempts.
        max_retries: Tries per request before giving up.
        backoff: Seconds before the first retry, doubled after each.
        seed: Request ``i`` of this agent is sent with seed ``seed + i`` (reproducible on servers
            that honour it, while the samples of one context still differ).
        context_length: The server's context in tokens; ``None`` asks the server (``max_model_len``).
        max_response_bytes: Largest reply read; a larger one is a :class:`ServerError`.
        max_retry_after: Longest wait a server's ``Retry-After`` can impose, in seconds.

    Example:
        >>> agent = OpenAICompatAgent("http://127.0.0.1:8000/v1", "my-model")
        >>> agent.name
        'openai:my-model'
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, chat: bool = True,
                 max_tokens: int = 256, temperature: float = 1.0, top_p: float = 1.0, concurrency: int = 16,
                 timeout: float = 60.0, max_retries: int = 3, backoff: float = 0.5, seed: int | None = None,
                 context_length: int | None = None, max_response_bytes: int = 8 << 20, max_retry_after: float = 60.0):
        if concurrency < 1 or max_retries < 1 or timeout <= 0 or max_response_bytes < 1:
            raise ValueError("expected concurrency >= 1, max_retries >= 1, timeout > 0 and max_response_bytes >= 1, "
                             f"actual {concurrency}, {max_retries}, {timeout}, {max_response_bytes}")
        self.base_url, self.model, self.name = base_url.rstrip("/"), model, f"openai:{model}"
        self.chat, self.max_tokens, self.temperature, self.top_p = chat, max_tokens, temperature, top_p
        self.concurrency, self.timeout, self.max_retries, self.backoff = concurrency, timeout, max_retries, backoff
        self.max_response_bytes, self.max_retry_after = max_response_bytes, max_retry_after
        self.seed, self._requests = seed, 0
        self.context_length, self._asked = context_length, context_length is not None
        self._tokenize: bool | None = None  # whether the server has POST /tokenize (None: not tried yet)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # --- the agent ---------------------------------------------------------------------------

    def act(self, observation: str) -> str:
        """The next step for one context; :class:`ServerError` if the server failed after every retry."""
        return self.act_batch([observation])[0]

    async def aact(self, observation: str) -> str:
        """The next step for one context, awaitable; concurrent calls share the ``concurrency`` limit."""
        return _raise_faults([await self._step(self._loop_session(), observation, self._next_seed())])[0]

    async def aclose(self) -> None:
        """Close the HTTP client that :meth:`aact` keeps for the running event loop."""
        session = self._per_loop.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.client.aclose()

    def act_batch(self, observations: Sequence[str]) -> list[str]:
        """The next step for each context; :class:`ServerError` if any request failed after every retry."""
        return _raise_faults(self.step_batch(observations))

    def step_batch(self, observations: Sequence[str]) -> list[StepOutput]:
        """The next step for each context, up to ``concurrency`` requests in flight; a request that failed after
        every retry gives its row ``StepOutput(text="", fault=<why, naming the server>)``, the others unaffected.
        """
        seeds = [self._next_seed() for _ in observations]
        return run_sync(self._gather(lambda s, i: self._step(s, observations[i], seeds[i]), len(observations)))

    def context_limit(self) -> int | None:
        """The server's context length in tokens (asked once: ``max_model_len`` of ``GET /models``), or ``None``."""
        return run_sync(self._gather(lambda s, _: self._limit(s), 1))[0]

    # --- the text generator ------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int | None = None,
                 stop: Sequence[str] | None = None) -> list[str]:
        """Continue each prompt: a string via ``/v1/completions``, chat messages via ``/v1/chat/completions``.

        Each output is cut just after the first of ``stop`` (kept in the output). A prompt that failed
        after every retry raises :class:`ServerError`; :meth:`generate_results` reports it per prompt instead.
        """
        return _raise_faults(self.generate_results(prompts, max_new_tokens=max_new_tokens, stop=stop))

    def generate_results(self, prompts: Sequence[Prompt], *, max_new_tokens: int | None = None,
                         stop: Sequence[str] | None = None) -> list[StepOutput]:
        """:meth:`generate`, one :class:`StepOutput` per prompt: its text, or ``fault`` saying why the server failed."""
        seeds = [self._next_seed() for _ in prompts]
        n_new, stops = max_new_tokens or self.max_tokens, list(stop or ())

        async def one(session: _Session, i: int) -> StepOutput:
            try:
                return StepOutput(await self._complete(session, prompts[i], n_new, stops, seeds[i]))
            except ServerError as e:
                return StepOutput("", fault=str(e))

        return run_sync(self._gather(one, len(prompts)))

    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[dict[str, float]]:
        """The log-probability of each label as the next token(s) after each prompt (``-inf``: not among them).

        One request per prompt with ``max_tokens=1`` and the top ``LABEL_ALTERNATIVES`` log-probabilities; a
        label that is one token is read off that list. A label the model writes as several tokens (" BAD" is
        " B" + "AD" for SmolLM2) is followed from each listed token that starts it, with one more request
        per such prefix (string prompts only); the tokenisations found are summed. Raises :class:`ServerError`.

        Example:
            >>> OpenAICompatAgent("http://127.0.0.1:8000/v1", "m").label_logprobs([], [" GOOD", " BAD"])
            []
        """
        async def one(session: _Session, i: int) -> dict[str, float]:
            tops: dict[str, dict[str, float]] = {}
            return {label: await self._label_logprob(session, prompts[i], "", label, tops) for label in labels}

        return run_sync(self._gather(one, len(prompts)))

    # --- steps and context length --------------------------------------------------------------

    async def _step(self, session: _Session, observation: str, seed: int | None) -> StepOutput:
        """One step, or a fault; a prompt the server finds too long is shrunk to a byte-safe size and sent once more."""
        try:
            prompt, meta = await self._fit(session, observation, strict=False)
            try:
                text = await self._complete(session, prompt, self.max_tokens, list(STOP_STRINGS), seed)
            except ContextTooLong as e:
                learned = _LIMIT_IN_MESSAGE.search(str(e))
                if learned:
                    self.context_length, self._asked = int(learned.group(1)), True
                if self.context_length is None:
                    raise
                prompt, meta = await self._fit(session, observation, strict=True)
                text = await self._complete(session, prompt, self.max_tokens, list(STOP_STRINGS), seed)
        except ServerError as e:
            return StepOutput("", fault=str(e))
        return StepOutput(truncate_at_action(text), meta)

    def _prompt(self, context: Context) -> Prompt:
        return context.messages() if self.chat else context.render()

    async def _fit(self, session: _Session, observation: str, strict: bool) -> tuple[Prompt, dict]:
        """The prompt for ``observation`` that fits the server's context with ``max_tokens`` more, and what was cut.

        Oldest steps go first; when even the last step alone is too long, its result is cut to its start.
        ``strict`` measures by :func:`estimate_tokens` with ``strict=True`` instead of asking the server.
        """
        try:
            context = Context.parse(observation)
        except ValueError:  # not a swirl context: sent as it is
            return (observation if not self.chat else [{"role": "user", "content": observation}]), {}
        limit = await self._limit(session)
        prompt = self._prompt(context)
        if limit is None or estimate_tokens(prompt, strict=True) <= limit - self.max_tokens:
            return prompt, {}
        budget = limit - self.max_tokens

        async def fits(c: Context) -> bool:
            p = self._prompt(c)
            return (estimate_tokens(p, strict=True) if strict else await self._count(session, p)) <= budget

        if await fits(context):
            return prompt, {}
        steps = len(context.steps)
        for keep in range(steps - 1, 0, -1):
            if await fits(fit_context(context, keep)):
                return self._prompt(fit_context(context, keep)), _cut(steps - keep, 0)
        result = (context.steps[-1].result or "") if steps else ""
        for share in (0.5, 0.25, 0.125, 0.0625):
            cut = fit_context(context, 1, int(len(result) * share))
            if steps and result and await fits(cut):
                return self._prompt(cut), _cut(steps - 1, len(result) - int(len(result) * share))
        return self._prompt(fit_context(context, 0)), _cut(steps, 0)  # the server decides; a refusal is a fault

    async def _limit(self, session: _Session) -> int | None:
        """The context length: given, or asked of the server once (``GET /models``); ``None`` if it does not say."""
        if self._asked:
            return self.context_length
        async with session.probe:
            if not self._asked:
                try:
                    status, data = await self._attempt(session, "GET", self.base_url + "/models", None)
                except (_Transient, ServerError):
                    return None  # asked again next time
                self.context_length, self._asked = _model_limit(data if status == 200 else b"", self.model), True
        return self.context_length

    async def _count(self, session: _Session, prompt: Prompt) -> int:
        """Tokens in ``prompt`` as the server counts them (``POST /tokenize``), else :func:`estimate_tokens`."""
        if self._tokenize is not False:
            payload = {"model": self.model, **({"prompt": prompt} if isinstance(prompt, str) else
                                              {"messages": prompt, "add_generation_prompt": True})}
            try:
                status, data = await self._attempt(session, "POST", self.base_url.removesuffix("/v1") + "/tokenize",
                                                   payload)
            except (_Transient, ServerError):
                return estimate_tokens(prompt)
            count = _token_count(data) if status == 200 else None
            self._tokenize = count is not None
            if count is not None:
                return count
        return estimate_tokens(prompt)

    async def _label_logprob(self, session: _Session, prompt: Prompt, written: str, label: str,
                             tops: dict[str, dict[str, float]]) -> float:
        """log P(the tokens after ``prompt + written`` spell ``label``), over the tokenisations the top lists hold."""
        if written not in tops:
            tops[written] = await self._alternatives(session, prompt if not written else prompt + written)
        paths = [lp for token, lp in tops[written].items() if token == label]
        for token, lp in tops[written].items():
            if token and len(token) < len(label) and label.startswith(token):
                if not isinstance(prompt, str):
                    raise ValueError(f"expected labels of one token for chat prompts, actual {label!r} starting with "
                                     f"the token {token!r}: pass string prompts or single-token labels")
                rest = await self._label_logprob(session, prompt, written + token, label[len(token):], tops)
                paths.append(lp + rest)
        paths = [p for p in paths if p > -math.inf]
        if not paths:
            return -math.inf
        top = max(paths)
        return top + math.log(sum(math.exp(p - top) for p in paths))

    async def _alternatives(self, session: _Session, prompt: Prompt) -> dict[str, float]:
        chat = not isinstance(prompt, str)
        payload: dict[str, Any] = {"model": self.model, "max_tokens": 1, "temperature": 0.0}
        if chat:
            payload.update(messages=prompt, logprobs=True, top_logprobs=LABEL_ALTERNATIVES)
        else:
            payload.update(prompt=prompt, logprobs=LABEL_ALTERNATIVES)
        path = "/chat/completions" if chat else "/completions"
        body = await self._post(session, path, payload)
        return next_token_alternatives(body, chat, self.base_url + path)

    # --- HTTP --------------------------------------------------------------------------------

    def _next_seed(self) -> int | None:
        self._requests += 1
        return None if self.seed is None else self.seed + self._requests - 1

    def _new_session(self) -> _Session:
        client = httpx.AsyncClient(timeout=self.timeout, headers=self._headers,
                                   limits=httpx.Limits(max_connections=self.concurrency))
        return _Session(client, asyncio.Semaphore(self.concurrency))

    def _loop_session(self) -> _Session:
        loop = asyncio.get_running_loop()
        if loop not in self._per_loop:
            self._per_loop[loop] = self._new_session()
        return self._per_loop[loop]

    async def _gather(self, one: Callable[[_Session, int], Coroutine], n: int) -> list[Any]:
        session = self._new_session()
        async with session.client:
            return list(await asyncio.gather(*(one(session, i) for i in range(n))))

    async def _complete(self, session: _Session, prompt: Prompt, max_tokens: int, stop: list[str],
                        seed: int | None) -> str:
        chat = not isinstance(prompt, str)
        payload: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "temperature": self.temperature,
                                   "top_p": self.top_p, ("messages" if chat else "prompt"): prompt}
        if stop:
            payload["stop"] = stop
        if seed is not None:
            payload["seed"] = seed
        path = "/chat/completions" if chat else "/completions"
        text, finish, stop_reason = choice_text(await self._post(session, path, payload), chat, self.base_url + path)
        return cut_at_stop(restore_stop(text, finish, stop, stop_reason), stop)[0]

    async def _post(self, session: _Session, path: str, payload: dict) -> Any:
        """The JSON reply to ``payload``, retrying what a retry can fix; else :class:`ServerError` naming the URL."""
        url, problem, reached, wait = self.base_url + path, "", False, 0.0
        for attempt in range(self.max_retries):
            if attempt:
                await asyncio.sleep(max(wait, self.backoff * 2 ** (attempt - 1)))
            wait = 0.0
            try:
                status, data, headers = await self._attempt(session, "POST", url, payload, with_headers=True)
            except _Transient as e:
                problem = str(e)
                continue
            reached = True
            if status < 400:
                try:
                    return json.loads(data)
                except ValueError:  # a cut or garbled body (a proxy, a restart): worth another try
                    problem = f"a reply that is not JSON: {data[:200]!r}"
                    continue
            message = _error_message(data)
            if status == 400 and CONTEXT_ERROR.search(message):
                raise ContextTooLong(f"{url} refused the prompt as longer than the model's context (HTTP 400: "
                                     f"{message})")
            if status not in RETRY_STATUS:
                raise ServerError(f"{url} rejected the request (HTTP {status}: {message}); check the model name "
                                  "and settings")
            problem = f"HTTP {status}: {message}"
            asked = retry_after_seconds(headers.get("retry-after"))
            wait = min(asked, self.max_retry_after) if asked is not None else 0.0
        if reached:
            raise ServerError(f"{url} failed after {self.max_retries} tries: {problem}")
        raise ServerError(f"could not reach {self.base_url} after {self.max_retries} tries: {problem}. Is the server "
                          "running? Start one with `python -m swirl_agents.serve --model PATH`")

    async def _attempt(self, session: _Session, method: str, url: str, payload: dict | None, *,
                       with_headers: bool = False) -> tuple:
        """One HTTP exchange under the wall-clock deadline: ``(status, body bytes[, headers])``.

        :class:`_Transient` for a connection problem or the deadline; :class:`ServerError` for a reply over
        ``max_response_bytes`` (read no further than the cap).
        """
        async def exchange() -> tuple:
            async with session.client.stream(method, url, json=payload) as response:
                return response.status_code, await self._read(response, url), response.headers

        try:
            async with session.slots:
                status, data, headers = await asyncio.wait_for(exchange(), self.timeout)
        except asyncio.TimeoutError:
            raise _Transient(f"no complete reply within the {self.timeout:g} s deadline (timeout)") from None
        except httpx.TransportError as e:  # connection refused, dropped connections, httpx's own timeouts
            raise _Transient(f"{type(e).__name__}: {e}".rstrip(": ")) from None
        return (status, data, headers) if with_headers else (status, data)

    async def _read(self, response: httpx.Response, url: str) -> bytes:
        cap = self.max_response_bytes
        too_big = ServerError(f"{url} sent a reply larger than max_response_bytes={cap}; lower max_tokens or raise "
                              "max_response_bytes if the server is right")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise too_big
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > cap:
                raise too_big
        return bytes(data)


def _raise_faults(out: list[StepOutput]) -> list[str]:
    """The texts of ``out``; the first fault raised as :class:`ServerError`."""
    faults = [s.fault for s in out if s.fault]
    if faults:
        raise ServerError(faults[0] if len(out) == 1 else f"{len(faults)} of {len(out)} requests failed: {faults[0]}")
    return [s.text for s in out]


def _cut(steps: int, result_chars: int) -> dict:
    return {"context_cut": {"dropped_steps": steps, "result_chars_dropped": result_chars}}
