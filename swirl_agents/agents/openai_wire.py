"""The OpenAI-compatible wire format, read strictly: replies parsed or refused with the server named, stop strings
restored, ``Retry-After`` honoured, contexts fitted to a server's length.

Everything here is a pure function of bytes or values (no I/O), so the protocol can be read and tested apart from
:mod:`swirl_agents.agents.openai_compat`, the agent with its HTTP session, deadlines and retries.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import re
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from swirl_env.context import Context, Turn, safe_text
from swirl_agents.agents.hf import Prompt

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
CONTEXT_ERROR = re.compile(r"maximum context length|context_length_exceeded", re.IGNORECASE)
"""How a server says a prompt is longer than its context (vLLM, OpenAI, swirl's server)."""
CHARS_PER_TOKEN = 2.0
"""Characters per token assumed when the server cannot count: half of what English BPE text gets."""
MESSAGE_TOKENS = 8
"""Tokens a chat template may add per message (role markers), an upper estimate."""
LABEL_ALTERNATIVES = 20
"""Alternatives per token :meth:`OpenAICompatAgent.label_logprobs` asks for (vLLM's default maximum)."""
_LAST_OPEN = re.compile(r"<(search_query|math_exp|answer)>(?!.*</\1>)", re.S)
_LIMIT_IN_MESSAGE = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)


class ServerError(ConnectionError):
    """The server could not be reached, kept failing, or answered with something no retry can fix."""


class ContextTooLong(ServerError):
    """The server refused a prompt as longer than its context (HTTP 400 "maximum context length")."""


class _Transient(Exception):
    """A failed attempt that another attempt may fix."""


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


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP-date); ``None`` if absent or unreadable.

    Example:
        >>> retry_after_seconds("2")
        2.0
        >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0)  # 10 s before that date
        10.0
        >>> retry_after_seconds("soon") is None, retry_after_seconds(None) is None
        (True, True)
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def estimate_tokens(prompt: Prompt, *, strict: bool = False) -> int:
    """A token count for ``prompt`` that errs high: ``CHARS_PER_TOKEN`` characters a token, or with ``strict``
    one token per UTF-8 byte (a bound for byte-level tokenizers), plus ``MESSAGE_TOKENS`` per chat message.

    Example:
        >>> estimate_tokens("a" * 100), estimate_tokens("a" * 100, strict=True)
        (50, 100)
        >>> estimate_tokens([{"role": "user", "content": "a" * 100}])
        66
    """
    texts = [prompt] if isinstance(prompt, str) else [str(m.get("content", "")) for m in prompt]
    extra = 0 if isinstance(prompt, str) else MESSAGE_TOKENS * (len(prompt) + 1)
    if strict:
        return extra + sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    return extra + math.ceil(sum(len(t) for t in texts) / CHARS_PER_TOKEN)


def fit_context(context: Context, keep_steps: int, result_chars: int | None = None) -> Context:
    """``context`` with only its last ``keep_steps`` steps; with ``result_chars`` the last kept result is cut to
    its first ``result_chars`` characters (a search result's best passages come first).

    Example:
        >>> c = Context("Task.", "Q?").with_step("s1", "r1").with_step("s2", "result two")
        >>> [t.text for t in fit_context(c, 1).steps], fit_context(c, 1, 6).steps[-1].result
        (['s2'], 'result')
    """
    steps = context.steps[len(context.steps) - keep_steps:] if keep_steps else ()
    if result_chars is not None and steps and steps[-1].result is not None:
        last = steps[-1]
        steps = (*steps[:-1], Turn(last.text, last.result[:result_chars]))
    return Context(context.instructions, context.question, tuple(steps))


def choice_text(body: Any, chat: bool, url: str) -> tuple[str, str | None, Any]:
    """``(text, finish_reason, stop_reason)`` of a reply's first choice; :class:`ServerError` naming ``url`` for
    any other shape (``stop_reason`` is ``""`` when the server sends none).

    Example:
        >>> choice_text({"choices": [{"text": "hi", "finish_reason": "length"}]}, False, "http://h/v1/completions")
        ('hi', 'length', '')
        >>> choice_text({"choices": []}, False, "http://h/v1/completions")
        Traceback (most recent call last):
        ...
        swirl_agents.agents.openai_wire.ServerError: http://h/v1/completions sent a malformed reply: expected a non-empty 'choices' list, actual {"choices": []}; is it an OpenAI-compatible server?
    """
    def malformed(expected: str) -> ServerError:
        return ServerError(f"{url} sent a malformed reply: expected {expected}, actual {json.dumps(body)[:300]}; "
                           "is it an OpenAI-compatible server?")

    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed("a non-empty 'choices' list")
    choice = choices[0]
    message = choice.get("message") if chat else choice
    key = "content" if chat else "text"
    if not isinstance(message, dict) or key not in message:
        raise malformed("choices[0].message.content" if chat else "choices[0].text")
    text = "" if message[key] is None else message[key]
    if not isinstance(text, str):
        raise malformed(f"a string choices[0].{'message.content' if chat else 'text'}")
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise malformed("a string choices[0].finish_reason")
    return safe_text(text), finish, choice.get("stop_reason", "")


def next_token_alternatives(body: Any, chat: bool, url: str) -> dict[str, float]:
    """The first generated token's alternatives ``{token text: log-probability}`` from a reply with logprobs.

    Tokens that decode to the same text are merged (their probabilities added).
    """
    def malformed(expected: str) -> ServerError:
        return ServerError(f"{url} sent no usable logprobs: expected {expected}, actual {json.dumps(body)[:300]}; "
                           "does the server support logprobs?")

    choices = body.get("choices") if isinstance(body, dict) else None
    lp = choices[0].get("logprobs") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    if chat:
        content = lp.get("content") if isinstance(lp, dict) else None
        if not isinstance(content, list) or not content or not isinstance(content[0], dict):
            raise malformed("choices[0].logprobs.content[0].top_logprobs")
        listed = content[0].get("top_logprobs") or []
        pairs = [(a.get("token"), a.get("logprob")) for a in listed if isinstance(a, dict)]
    else:
        tops = lp.get("top_logprobs") if isinstance(lp, dict) else None
        if not isinstance(tops, list) or not tops or not isinstance(tops[0], dict):
            raise malformed("choices[0].logprobs.top_logprobs[0]")
        pairs = list(tops[0].items())
    out: dict[str, float] = {}
    for token, logprob in pairs:
        if not isinstance(token, str) or isinstance(logprob, bool) or not isinstance(logprob, (int, float)):
            raise malformed("token strings with numeric log-probabilities")
        out[token] = float(logprob) if token not in out else float(math.log(math.exp(out[token]) + math.exp(logprob)))
    return out


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


def _error_message(data: bytes) -> str:
    """The message of an error reply: OpenAI's ``error.message`` (or ``detail``), else the start of the body."""
    try:
        body = json.loads(data)
    except ValueError:
        return data[:300].decode("utf-8", "replace")
    error = body.get("error", body.get("detail")) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return str(message if message is not None else body)[:300]


def _model_limit(data: bytes, model: str) -> int | None:
    """The context length ``GET /models`` reports for ``model`` (``max_model_len``, or ``context_length``)."""
    try:
        entries = json.loads(data).get("data")
    except (ValueError, AttributeError):
        return None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model:
            limit = entry.get("max_model_len", entry.get("context_length"))
            return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
    return None


def _token_count(data: bytes) -> int | None:
    """``count`` (or the number of ``tokens``) of a ``/tokenize`` reply; ``None`` when it is not one."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    count = body.get("count", len(body["tokens"]) if isinstance(body.get("tokens"), list) else None)
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else None
