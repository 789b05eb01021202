"""The shared environment: text context in, one text step out, tools in between."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from swirl_env import context as ctx
from swirl_env.actions import ANSWER_TAG, parse_action
from swirl_env.data.types import Question
from swirl_env.spaces import UnicodeText
from swirl_env.tools.base import Tool, ToolError

ScoreFn = Callable[[str, Sequence[str]], dict[str, float]]


def run_tool(tool: Tool, argument: str, max_chars: int) -> tuple[str, bool]:
    """Run ``tool`` on ``argument``; return (observation text, ok). Tool errors become text, never exceptions."""
    try:
        output, ok = tool(argument), True
    except ToolError as e:
        output, ok = f"Error: {e}", False
    if len(output) > max_chars:
        output = output[: max_chars - 15] + " ...[truncated]"
    return output, ok


class SwirlEnv(gym.Env[str, str]):
    """Base class of every swirl environment; see :class:`swirl_env.envs.qa.SwirlQAEnv` for the docs."""

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 1}
    task = ""
    """What kind of task the env is: ``"qa"`` or ``"math"`` (set by each env class); nothing else should ask."""

    def __init__(
        self,
        questions: Sequence[Question],
        tools: Sequence[Tool],
        score_fn: ScoreFn,
        *,
        max_steps: int,
        reward_metric: str = "exact_match",
        max_action_chars: int = 2000,
        max_result_chars: int = 6000,
        render_mode: str | None = None,
    ):
        if not questions:
            raise ValueError("expected at least one question, actual 0; check the data file or split")
        if max_steps < 1:
            raise ValueError(f"expected max_steps >= 1, actual {max_steps}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"expected render_mode in {self.metadata['render_modes']}, actual {render_mode!r}")
        self.questions = list(questions)
        self._index = {q.id: i for i, q in enumerate(self.questions)}
        self.tools = {t.tag: t for t in tools}
        self.score_fn = score_fn
        self.max_steps = max_steps
        self.reward_metric = reward_metric
        self.max_action_chars = max_action_chars
        self.max_result_chars = max_result_chars
        self.render_mode = render_mode
        self.allowed_tags = (*self.tools, ANSWER_TAG)
        self.instructions = ctx.instructions(tuple(self.tools), max_steps)
        longest = max(len(q.question) for q in self.questions)
        # Escaping (swirl_env.context) at most doubles a field.
        per_step = 2 * (max_action_chars + max_result_chars) + 64
        bound = 2 * len(ctx.render_start(self.instructions, "")) + 2 * longest + max_steps * per_step
        self.observation_space = UnicodeText(max_length=bound)
        self.action_space = UnicodeText(max_length=max_action_chars)
        self.question: Question | None = None
        self.context: ctx.Context | None = None
        """What the agent has seen so far (the structure behind the observation string)."""
        self._observation = ""
        self._counts = {"tool_calls": 0, "malformed_steps": 0, "tool_errors": 0}

    # -- gymnasium API ---------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        self.question = self.questions[self._pick(options or {})]
        self.context = ctx.Context(self.instructions, self.question.question)
        self._observation = self.context.render()
        self._counts = dict.fromkeys(self._counts, 0)
        return self._observation, self._info(text="", result=None, tool="", tool_input="", error="")

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self.question is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if not isinstance(action, str):
            raise TypeError(f"expected the action to be a str, actual {type(action).__name__}")
        step_text = ctx.safe_text(action)[: self.max_action_chars]  # kept as written: the policy is trained on exactly these tokens
        parsed = parse_action(step_text, self.allowed_tags)
        reward, terminated, answer = 0.0, False, None
        if parsed.error:
            self._counts["malformed_steps"] += 1
            result: str | None = f"Invalid step: {parsed.error}"
        elif parsed.is_answer:
            result, terminated, answer = None, True, parsed.argument
        else:
            self._counts["tool_calls"] += 1
            result, ok = run_tool(self.tools[parsed.tag], parsed.argument, self.max_result_chars)
            self._counts["tool_errors"] += not ok
        self.context = self.context.with_step(step_text, result)
        self._observation += "".join(self.context.pieces()[-2:])  # what this step appends to the rendering
        truncated = not terminated and len(self.context.steps) >= self.max_steps
        info = self._info(text=step_text, result=result, tool=parsed.tag or "", tool_input=parsed.argument,
                          error=parsed.error or "")
        if terminated or truncated:
            info.update(self._final_info(answer))
            reward = info["score"].get(self.reward_metric, 0.0) if answer is not None else 0.0
        if self.render_mode == "human":
            print(self.render_ansi())
        return self._observation, float(reward), terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.render_ansi()
        if self.render_mode == "human":
            print(self.render_ansi())
        return None

    def render_ansi(self) -> str:
        """The context so far for a person: the question, then each step numbered with what came back."""
        if self.context is None:
            return ""
        lines = [f"Question: {self.context.question}"]
        for i, turn in enumerate(self.context.steps, 1):
            lines.append(f"\n[step {i}/{self.max_steps}] {turn.text}")
            if turn.result is not None:
                lines.append("  " + turn.result.replace("\n", "\n  "))
        return "\n".join(lines) + "\n"

    # -- helpers -----------------------------------------------------------------------------

    def _pick(self, options: dict[str, Any]) -> int:
        unknown = set(options) - {"question_id", "question_index"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; expected 'question_id' or 'question_index'")
        if "question_id" in options:
            qid = str(options["question_id"])
            if qid not in self._index:
                close = difflib.get_close_matches(qid, list(self._index), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise KeyError(f"question_id {qid!r} is not in this env's {len(self.questions)} questions.{hint}")
            return self._index[qid]
        if "question_index" in options:
            return int(options["question_index"]) % len(self.questions)
        return int(self.np_random.integers(len(self.questions)))

    def _info(self, *, text: str, result: str | None, tool: str, tool_input: str, error: str) -> dict[str, Any]:
        assert self.question is not None and self.context is not None
        return {
            "question_id": self.question.id,
            "question": self.question.question,
            "step": len(self.context.steps),
            "messages": self.context.messages(),
            "step_text": text,
            "result": result,
            "tool": tool,
            "tool_input": tool_input,
            "error": error,
            **self._counts,
        }

    def _final_info(self, answer: str | None) -> dict[str, Any]:
        assert self.question is not None
        q = self.question
        if not q.answers:  # a free question (solve()): no gold, so no score rather than a wrong one
            scores: dict[str, float] = {}
        elif answer is None:
            scores = dict.fromkeys(self.score_fn("", q.answers), 0.0)
        else:
            scores = self.score_fn(answer, q.answers)
        return {
            "answer": answer if answer is not None else "",
            "answered": answer is not None,
            "score": scores,
            "gold_answers": q.answers,
            "supporting_facts": q.supporting_facts,
        }
