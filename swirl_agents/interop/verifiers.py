"""Swirl envs under ``verifiers`` (whose environments feed prime-rl, SkyRL, rLLM and NeMo Gym).

Install with ``pip install "verifiers>=0.2.1,<0.4"`` (0.4 dropped the Gymnasium adapter). verifiers'
``GymEnv`` runs any env with ``reset(seed=...)`` and ``step(action)`` as a chat: the first
observation is the prompt, the model's reply is the action, each later observation a user message.
:func:`verifiers_env` gives it a swirl env so that the chat is exactly
:meth:`swirl_env.context.Context.messages`: the instructions as the system prompt, ``Question: ...``
as the first user message, each step an assistant message and each tool result the user message
``<result>...</result>`` after it. The reward is the env's: the outcome score at the answer.

Two differences from a swirl rollout, both verifiers' own: a rollout ends with a user message that
says the episode ended, and ``GymEnv`` picks questions by ``reset(seed=...)`` (seed ``seed + i`` for
dataset row ``i``), not by question id.

:func:`agent_client` goes the other way: any swirl agent (a reference agent, a transformers model, an
OpenAI-compatible server) as a verifiers client, which reads the chat back into a swirl context
(:meth:`Context.from_messages`, by role) and gives the agent its usual observation.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import gymnasium as gym

from swirl_env.context import Context, escape


def _verifiers() -> Any:
    try:
        import verifiers
        from verifiers.envs.experimental.gym_env import GymEnv  # noqa: F401  (0.2 path; 0.3 aliases it)
    except ImportError as e:
        raise ImportError('the verifiers bridge needs verifiers 0.2 or 0.3 (0.4 has no GymEnv); install it with '
                          f'pip install "verifiers>=0.2.1,<0.4" ({e})') from None
    return verifiers


def chat_turn(observation: str) -> str:
    """The chat message a swirl observation adds: the question for the first, else the last tool result (or ``""``).

    Example:
        >>> c = Context("Be brief.", "2+3?")
        >>> chat_turn(c.render())
        'Question: 2+3?'
        >>> chat_turn(c.with_step("<math_exp>2+3</math_exp>", "5").render())
        '<result>\\n5\\n</result>'
        >>> chat_turn(c.with_step("<answer>5</answer>", None).render())
        ''
    """
    context = Context.parse(observation)  # the env's own rendering, read back by the one exact parser
    messages = context.messages()
    if not context.steps:
        return messages[1]["content"]
    return messages[-1]["content"] if messages[-1]["role"] == "user" else ""


def verifiers_env(env_id: str, *, env_kwargs: dict[str, Any] | None = None, num_train_episodes: int = 100,
                  num_eval_episodes: int = 10, seed: int = 0, **kwargs: Any) -> Any:
    """The swirl env ``env_id`` as a verifiers ``GymEnv`` (a ``vf.MultiTurnEnv``).

    Args:
        env_id: A registered swirl env id (``SwirlGSM8K-v0``, ``SwirlHotpot-v0``, ...).
        env_kwargs: Passed to ``gym.make`` (``split``, ``max_steps``, ``data_path``...).
        num_train_episodes: Rows of the verifiers train dataset (seeds ``seed``, ``seed + 1``, ...).
        num_eval_episodes: Rows of its eval dataset (the seeds after those).
        seed: The first seed.
        kwargs: Passed to ``GymEnv`` (``rubric``, ``parser``, ...).

    Returns:
        A ``GymEnv`` whose episodes end at the env's step limit or answer.
    """
    vf = _verifiers()
    from verifiers.envs.experimental.gym_env import GymEnv

    env_kwargs = dict(env_kwargs or {})
    probe = gym.make(env_id, **env_kwargs)
    instructions, max_steps = probe.unwrapped.instructions, probe.unwrapped.max_steps
    probe.close()

    class SwirlGymEnv(GymEnv):
        """verifiers' GymEnv that stops at the episode's end instead of asking the model once more."""

        async def env_response(self, messages: Any, state: Any, **kw: Any) -> Any:
            reply = await super().env_response(messages, state, **kw)
            if state.get("gym_done"):
                state["final_env_response"] = reply
            return reply

    del vf  # imported for the check above
    return SwirlGymEnv(env_cls=functools.partial(gym.make, env_id), env_kwargs=env_kwargs, obs_to_text=chat_turn,
                       num_train_episodes=num_train_episodes, num_eval_episodes=num_eval_episodes, seed=seed,
                       max_episode_steps=max_steps, system_prompt=Context(instructions, "").messages()[0]["content"],
                       **kwargs)


def agent_client(agent: Any) -> Any:
    """A verifiers ``Client`` whose model is the swirl ``agent`` (anything :func:`make_agent` builds).

    The chat is read back into a :class:`Context` by role (:meth:`Context.from_messages`) and the
    agent gets its rendering, as in a swirl rollout; its step is the assistant reply.
    """
    return _client_class()(agent)


@functools.cache
def _client_class() -> type:
    vf = _verifiers()
    from verifiers.types import Response, ResponseMessage

    from swirl_agents.agents.base import act_batch

    class AgentClient(vf.Client):
        """A swirl agent behind verifiers' client interface (no tools: swirl actions are text)."""

        def __init__(self, agent: Any):
            super().__init__(agent)

        def setup_client(self, config: Any) -> Any:
            raise ValueError("expected an agent object, actual a client config: use agent_client(make_agent(...))")

        async def to_native_tool(self, tool: Any) -> Any:
            raise ValueError(f"expected no tools (swirl actions are text tags), actual tool {tool.name!r}")

        async def to_native_prompt(self, messages: Any) -> tuple[str, dict]:
            # Steps are the model's raw replies; results and the question come escaped from Context.messages.
            plain = [{"role": m["role"], "content": escape(m["content"]) if m["role"] == "assistant" else m["content"]}
                     for m in messages]
            return Context.from_messages(plain).render(), {}

        async def get_native_response(self, prompt: str, model: str, sampling_args: Any, tools: Any = None,
                                      **kwargs: Any) -> str:
            return (await asyncio.to_thread(act_batch, self.client, [prompt]))[0]

        async def raise_from_native_response(self, response: str) -> None:
            return None

        async def from_native_response(self, response: str) -> Any:
            return Response(id=f"swirl-{time.time_ns()}", created=int(time.time()), model="swirl-agent",
                            message=ResponseMessage(content=response, finish_reason="stop", is_truncated=False))

        async def close(self) -> None:
            return None

    return AgentClient
