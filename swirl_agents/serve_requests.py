"""What swirl's server accepts: the OpenAI request fields it reads, checked, and refused with HTTP 400 naming the field
when it would not honour them (:mod:`swirl_agents.serve`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MAX_LOGPROBS = 20
"""Most alternatives per token a request may ask for (vLLM's default ``max_logprobs``)."""

_COMMON = {"model", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "logprobs", "stream", "user",
           "stream_options", "presence_penalty", "frequency_penalty", "logit_bias"}
PARAMETERS = {
    "/v1/completions": _COMMON | {"prompt", "echo", "best_of", "suffix"},
    "/v1/chat/completions": _COMMON | {"messages", "max_completion_tokens", "top_logprobs"},
}
"""The request fields each endpoint reads; any other field is refused with HTTP 400."""

_NEUTRAL: dict[str, Callable[[Any], bool]] = {
    "n": lambda v: v == 1 and not isinstance(v, bool),
    "best_of": lambda v: v == 1 and not isinstance(v, bool),
    "stream": lambda v: v is False,
    "stream_options": lambda v: False,
    "presence_penalty": lambda v: v == 0 and not isinstance(v, bool),
    "frequency_penalty": lambda v: v == 0 and not isinstance(v, bool),
    "logit_bias": lambda v: v == {},
    "suffix": lambda v: v == "",
    "user": lambda v: isinstance(v, str),  # an end-user id for abuse monitoring: nothing to honour
}
"""Fields accepted only at a value that changes nothing (``null`` is always accepted)."""


class RequestError(ValueError):
    """A bad request: answered with HTTP 400 (or ``status``) and the message."""

    def __init__(self, message: str, status: int = 400, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


def _number(body: dict, key: str, default: Any, kind: type, low: float, high: float) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and int(value) != value):
        raise RequestError(f"expected '{key}' to be a {kind.__name__}, actual {value!r}", param=key)
    if not low <= value <= high:
        raise RequestError(f"expected '{key}' in [{low}, {high}], actual {value}", param=key)
    return kind(value)


def check_parameters(path: str, body: dict) -> None:
    """Refuse (HTTP 400, naming it) any field this endpoint does not read or does not honour at its value.

    Example:
        >>> check_parameters("/v1/completions", {"prompt": "x", "n": 1, "user": "me"})
        >>> check_parameters("/v1/completions", {"prompt": "x", "best_of": 3})
        Traceback (most recent call last):
        ...
        swirl_agents.serve_requests.RequestError: unsupported value for 'best_of': expected 1 (or leave it out), actual 3: this server does not honour it
    """
    for key, value in body.items():
        if key not in PARAMETERS[path]:
            raise RequestError(f"unsupported parameter '{key}' for POST {path}: this server does not honour it; "
                               f"remove it (supported: {', '.join(sorted(PARAMETERS[path]))})", param=key)
        if key in _NEUTRAL and value is not None and not _NEUTRAL[key](value):
            neutral = {"n": 1, "best_of": 1, "stream": "false", "presence_penalty": 0, "frequency_penalty": 0,
                       "logit_bias": "{}", "suffix": '""', "user": "a string"}.get(key, "null")
            raise RequestError(f"unsupported value for '{key}': expected {neutral} (or leave it out), actual "
                               f"{json.dumps(value)[:80]}: this server does not honour it", param=key)


def request_settings(body: dict, default_max_tokens: int) -> dict[str, Any]:
    """Validate the OpenAI sampling fields and map them to :meth:`TransformersAgent.complete_ids` arguments.

    ``max_tokens: 0`` is accepted only with ``echo`` (scoring a prompt without generating).
    """
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError(f"expected 'stop' to be a string or a list of strings, actual {stop!r}", param="stop")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    lowest = 0 if body.get("echo") is True else 1
    temperature = _number(body, "temperature", 1.0, float, 0.0, 2.0)
    return {
        "max_new_tokens": _number({"max_tokens": max_tokens}, "max_tokens", default_max_tokens, int, lowest, 1 << 20),
        "temperature": temperature,
        "do_sample": temperature > 0,
        "top_p": _number(body, "top_p", 1.0, float, 1e-9, 1.0),
        "stop": stop,
        "seed": _number(body, "seed", None, int, -(1 << 63), (1 << 63) - 1),
    }


def requested_logprobs(path: str, body: dict) -> int | None:
    """How many alternatives per token the request wants, ``None`` for no log-probabilities."""
    if path == "/v1/completions":
        return _number(body, "logprobs", None, int, 0, MAX_LOGPROBS)
    flag = body.get("logprobs")
    if flag is not None and not isinstance(flag, bool):
        raise RequestError(f"expected 'logprobs' to be true or false for chat, actual {flag!r}", param="logprobs")
    top = _number(body, "top_logprobs", None, int, 0, MAX_LOGPROBS)
    if top is not None and not flag:
        raise RequestError("expected 'logprobs': true with 'top_logprobs'", param="top_logprobs")
    return (top or 0) if flag else None
