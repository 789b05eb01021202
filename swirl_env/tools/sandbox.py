"""Run a text -> text function in reusable worker processes with a hard time and memory bound.

A sympy call is one long C computation that no signal can interrupt, and Python cannot cap the
memory of its own process. So a tool whose cost cannot be proven small runs in a child process:
the parent waits for the answer with a wall-clock deadline and kills the child when it passes;
the child caps its own address space (``RLIMIT_AS``), so an allocation past the cap fails with a
``MemoryError`` instead of swapping the machine. A killed or failed worker is replaced on the
next call, and every failure reaches the caller as a :class:`~swirl_env.tools.base.ToolError`,
which the environment turns into an observation.

Workers are plain ``python -m swirl_env.tools.sandbox`` subprocesses speaking JSON lines on their
stdin and stdout: no ``multiprocessing`` start method, no re-import of the user's ``__main__``. A
pool starts workers lazily (one per concurrent caller, up to ``size``), reuses them across calls,
is safe to call from many threads, forgets inherited workers in a forked child (they belong to the
parent), and closes its own at exit, reaping every process it started.

Example:
    >>> pool = WorkerPool("swirl_env.tools.sandbox:echo", time_limit=30.0)
    >>> pool.call("hello")
    'hello'
    >>> pool.close()
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from swirl_env.tools.base import ToolError

START_TIMEOUT = 120.0  # seconds a fresh worker may take to import its function (sympy: ~1 s when idle)
_CLOSE_GRACE = 2.0  # seconds a worker gets to exit after its stdin closes, before it is killed


def echo(text: str) -> str:
    """Return ``text`` unchanged: a target for examples and tests of the pool itself."""
    return text


@dataclass
class PoolStats:
    """What a pool has done, for benchmarks and logs."""

    calls: int = 0
    started: int = 0
    """Worker processes started (the first ones and every replacement)."""
    timeouts: int = 0
    """Calls that passed the time limit; their worker was killed."""
    out_of_memory: int = 0
    """Calls that hit the memory limit; their worker exited."""
    crashes: int = 0
    """Workers that died on their own (a signal, an exit status)."""
    peak_rss_bytes: int = 0
    """Largest resident memory any worker reported after a call."""
    errors: dict[str, int] = field(default_factory=dict)
    """Failed calls by kind: ``tool_error``, ``timeout``, ``memory``, ``died``, ``internal``."""

    @property
    def restarts(self) -> int:
        """Workers started to replace one that was killed or died."""
        return self.timeouts + self.out_of_memory + self.crashes


class _Worker:
    """One child process and the pipes to it."""

    def __init__(self, target: str, memory_limit: int | None, warmup: tuple[str, ...]):
        limit = str(memory_limit or 0)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "swirl_env.tools.sandbox", target, limit, json.dumps(list(warmup))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, bufsize=0,
            start_new_session=True,  # Ctrl-C in a terminal reaches the parent, not the worker
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        self.owner = os.getpid()
        self._buffer = b""
        try:
            ready = self.receive(time.monotonic() + START_TIMEOUT)
        except EOFError:
            ready = None
        if ready is None or "ready" not in ready:
            self.kill()
            raise ToolError(f"could not start a worker for {target}: expected a ready line, actual {ready!r}")

    def send(self, text: str) -> None:
        self.process.stdin.write(json.dumps({"text": text}).encode() + b"\n")

    def receive(self, deadline: float) -> dict | None:
        """The next reply, or None when the deadline passes.

        Raises:
            EOFError: the worker closed its output (it has died or is dying).
        """
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([self.process.stdout], [], [], left)
            if not readable:
                return None
            chunk = os.read(self.process.stdout.fileno(), 1 << 16)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Kill the child and reap it, so that no zombie is left."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._close_pipes()

    def close(self) -> None:
        """Ask the child to exit (end of its input), then kill it if it does not."""
        self._close_pipes()
        try:
            self.process.wait(_CLOSE_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()

    def forget(self) -> None:
        """In a forked child: drop the parent's worker without touching the process."""
        self._close_pipes()
        self.process.returncode = 0  # not ours to wait for; stops Popen from trying

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class WorkerPool:
    """Up to ``size`` worker processes that run ``target`` (``"module:function"``) on text.

    Args:
        target: ``"module:function"``; the function takes one string, returns one string and raises
            :class:`~swirl_env.tools.base.ToolError` for input it cannot serve.
        time_limit: seconds of wall-clock time a call may take before its worker is killed.
        memory_limit: bytes of address space a worker may use (``None``: no cap).
        size: most workers alive at once; callers beyond that wait for a free one.
        warmup: inputs a new worker runs before it takes calls, so that lazy imports and caches
            are not paid inside a call's time limit (their results and errors are ignored).

    Raises (from :meth:`call`):
        ToolError: the function's own error, or a plain statement of the bound that was hit.
    """

    def __init__(
        self, target: str, *, time_limit: float, memory_limit: int | None = None, size: int = 4,
        warmup: tuple[str, ...] = (),
    ):
        if time_limit <= 0 or size < 1:
            raise ValueError(f"expected time_limit > 0 and size >= 1, actual {time_limit!r} and {size!r}")
        self.target, self.time_limit, self.memory_limit, self.size = target, time_limit, memory_limit, size
        self.warmup = tuple(warmup)
        self.stats = PoolStats()
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._idle: list[_Worker] = []
        self._alive = 0
        self._changed = threading.Condition()

    def call(self, text: str) -> str:
        """Run the target on ``text`` in a worker; see the class for the errors."""
        worker = self._acquire()
        healthy = False
        try:
            reply = self._exchange(worker, text)
            healthy = not ({"died", "memory"} & set(reply))
            return self._result(reply)
        finally:
            self._release(worker, healthy)

    def close(self) -> None:
        """Stop every idle worker (busy ones stop when their call returns)."""
        with self._changed:
            idle, self._idle = self._idle, []
            self._alive -= len(idle)
        for worker in idle:
            if worker.owner == os.getpid():
                worker.close()

    def _acquire(self) -> _Worker:
        with self._changed:
            while not self._idle and self._alive >= self.size:
                self._changed.wait()
            if self._idle:
                return self._idle.pop()
            self._alive += 1
        try:
            worker = _Worker(self.target, self.memory_limit, self.warmup)
        except BaseException:
            with self._changed:
                self._alive -= 1
                self._changed.notify()
            raise
        self.stats.started += 1
        return worker

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if not healthy:
            worker.kill()
        with self._changed:
            if healthy and worker.owner == os.getpid():
                self._idle.append(worker)
            else:
                self._alive -= 1
            self._changed.notify()

    def _exchange(self, worker: _Worker, text: str) -> dict:
        self.stats.calls += 1
        try:
            worker.send(text)
        except OSError:
            return {"died": "its input pipe was closed"}
        try:
            reply = worker.receive(time.monotonic() + self.time_limit)
        except EOFError:
            worker.kill()  # reaps it: its exit status is known after this
            return {"died": f"exit status {worker.process.returncode}"}
        if reply is None:
            worker.kill()
            return {"died": "timeout"}
        self.stats.peak_rss_bytes = max(self.stats.peak_rss_bytes, reply.pop("rss", 0))
        return reply

    def _result(self, reply: dict) -> str:
        if "ok" in reply:
            return reply["ok"]
        kind, message = _failure(reply, self.time_limit, self.memory_limit)
        counter = {"timeout": "timeouts", "memory": "out_of_memory", "died": "crashes"}.get(kind)
        if counter:
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
        raise ToolError(message)


def _failure(reply: dict, time_limit: float, memory_limit: int | None) -> tuple[str, str]:
    """(kind, message for the model) of a reply that is not a result."""
    if "tool_error" in reply:
        return "tool_error", reply["tool_error"]
    if reply.get("died") == "timeout":
        return "timeout", f"calculation stopped after {time_limit:g} s (the time limit): simplify the expression"
    if "memory" in reply:
        return "memory", (
            f"calculation stopped: it needed more than {memory_limit / 2**20:.0f} MiB of memory (the limit); "
            "simplify the expression"
        )
    if "died" in reply:
        return "died", f"the tool worker died ({reply['died']}) and was restarted; try again or simplify the expression"
    return "internal", f"internal error in the tool ({reply.get('crash')})"


_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


def _forget_inherited_workers() -> None:
    """After ``fork``: the workers (and any lock a thread held) belong to the parent process."""
    for pool in list(_POOLS):
        for worker in pool._idle:
            worker.forget()
        pool._reset()


def _close_all() -> None:
    for pool in list(_POOLS):
        pool.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_workers)
atexit.register(_close_all)


# --- the worker side ------------------------------------------------------------------------------


def _load(target: str) -> Callable[[str], str]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _limit_memory(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limit > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _serve(target: str, memory_limit: int, warmup: list[str]) -> None:
    """The worker loop: one JSON request per input line, one JSON reply per output line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything the function prints goes to stderr, not into the protocol
    function = _load(target)
    for text in warmup:
        _answer(function, text)
    _limit_memory(memory_limit)
    replies.write(json.dumps({"ready": os.getpid()}).encode() + b"\n")
    for line in sys.stdin.buffer:
        reply, stop = _answer(function, json.loads(line)["text"])
        reply["rss"] = _rss_bytes()
        replies.write(json.dumps(reply).encode() + b"\n")
        if stop:
            return


def _answer(function: Callable[[str], str], text: str) -> tuple[dict, bool]:
    try:
        return {"ok": function(text)}, False
    except ToolError as error:
        return {"tool_error": str(error)}, False
    except MemoryError:
        return {"memory": True}, True  # the heap may be half-built: start afresh
    except Exception as error:  # a bug in the function: report it, keep serving
        return {"crash": f"{type(error).__name__}: {str(error)[:200]}"}, False


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))
