"""Worker processes: a hard wall-clock kill, a memory cap, restarts, threads, fork and a clean exit.

The target is ``builtins:eval`` of trusted test text, so that a test can ask a worker for an
uninterruptible C loop (``sum(range(10**12))``), a big allocation or its own death.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from swirl_env.tools.base import ToolError
from swirl_env.tools.calculator import Calculator
from swirl_env.tools.sandbox import WorkerPool

FOREVER = "sum(range(10**12))"  # one C call: no signal handler runs until it returns, in hours


@pytest.fixture
def pool():
    pool = WorkerPool("builtins:eval", time_limit=1.0, memory_limit=512 * 2**20, size=2)
    yield pool
    pool.close()


def _gone(pid: int) -> bool:
    """True when no process has this pid: killed and reaped (a zombie still has one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_call_past_the_time_limit_is_killed_reaped_and_replaced(pool):
    pid = pool.call("__import__('os').getpid()")
    with pytest.raises(ToolError, match="stopped after 1 s"):
        pool.call(FOREVER)
    assert _gone(pid)
    assert pool.call("6 * 7") == 42 and pool.call("__import__('os').getpid()") != pid
    assert (pool.stats.timeouts, pool.stats.restarts, pool.stats.started) == (1, 1, 2)


def test_memory_past_the_limit_is_an_error_and_a_fresh_worker(pool):
    pid = pool.call("__import__('os').getpid()")
    with pytest.raises(ToolError, match="more than 512 MiB"):
        pool.call("bytearray(2**30)")
    assert _gone(pid)
    assert pool.call("len(bytearray(2**20))") == 2**20
    assert pool.stats.out_of_memory == 1


def test_a_worker_that_dies_is_replaced(pool):
    with pytest.raises(ToolError, match=r"died \(exit status 3\)"):
        pool.call("__import__('os')._exit(3)")
    assert pool.call("1 + 1") == 2
    assert pool.stats.crashes == 1


def test_an_unexpected_exception_is_an_internal_error_and_the_worker_stays(pool):
    pid = pool.call("__import__('os').getpid()")
    with pytest.raises(ToolError, match="internal error in the tool .ZeroDivisionError"):
        pool.call("1/0")
    assert pool.call("__import__('os').getpid()") == pid
    assert pool.stats.restarts == 0


def test_printing_in_the_worker_does_not_break_the_protocol(pool):
    assert pool.call("print('noise') or 5") == 5


def test_threads_share_the_pool_and_get_their_own_answers(pool):
    with ThreadPoolExecutor(6) as threads:
        assert list(threads.map(pool.call, [f"{i} * 3" for i in range(30)])) == [i * 3 for i in range(30)]
    assert pool.stats.started <= pool.size


def test_a_timeout_in_one_thread_does_not_disturb_the_others(pool):
    def call(text):
        try:
            return pool.call(text)
        except ToolError as error:
            return str(error)[:27]

    with ThreadPoolExecutor(3) as threads:
        results = list(threads.map(call, ["2 + 2", FOREVER, "3 + 3", "4 + 4"]))
    assert results == [4, "calculation stopped after 1", 6, 8]


def test_a_forked_child_starts_its_own_workers_and_leaves_the_parents_alone():
    calc = Calculator(time_limit=30.0)
    assert calc("sqrt(8)") == "2*sqrt(2) ≈ 2.828427125"  # the parent now holds a worker
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        ok = calc("sqrt(18)") == "3*sqrt(2) ≈ 4.242640687"
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert calc("sqrt(50)") == "5*sqrt(2) ≈ 7.071067812"  # the child's exit closed nothing of ours


def test_exit_closes_and_reaps_every_worker(tmp_path):
    script = (
        "from swirl_env.tools.calculator import Calculator, worker_pool\n"
        "print(Calculator()('sqrt(2)'))\n"
        "print(worker_pool()._idle[0].process.pid)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    shown, pid = done.stdout.split("\n")[:2]
    assert shown == "sqrt(2) ≈ 1.414213562"
    assert _gone(int(pid))  # closed at exit and waited for by its parent: no orphan, no zombie
