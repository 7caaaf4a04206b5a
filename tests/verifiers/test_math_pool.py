"""The bounded worker pool: deadlines kill and replace workers, memory overruns and crashes are verdicts."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reasoner.verifiers.math_answer.pool import CheckPool, run_inline

SLOW = (r"\frac{\sin^2 x + \cos^2 x}{\tan y \cot y}", "1", 1e-6)  # several ms of sympy work
FAST = ("x + 1", "1 + x", 1e-6)


@pytest.fixture
def pool():
    p = CheckPool(workers=2, timeout=5.0, memory_mb=1024)
    yield p
    p.close()


def test_results_come_back_in_order(pool):
    jobs = [(f"{k}x", f"x*{k}", 1e-6) for k in range(1, 20)] + [("x", "x + 1", 1e-6)]
    results = pool.run(jobs)
    assert [r[0] for r in results] == ["correct"] * 19 + ["wrong"]


def test_overrun_is_a_timeout_and_the_worker_is_replaced(pool):
    pool.run([FAST, FAST])
    before = set(pool.pids)
    pool.timeout = 0.001  # no sympy comparison finishes in a millisecond
    start = time.monotonic()
    results = pool.run([SLOW, SLOW])
    assert time.monotonic() - start < 2.0
    assert [r[0] for r in results] == ["timeout", "timeout"]
    assert results[0][1]["bound"] == "time"
    assert pool.replaced == 2 and not (set(pool.pids) & before)
    pool.timeout = 5.0
    assert [r[0] for r in pool.run([SLOW, FAST])] == ["correct", "correct"]  # the replacements work


def test_a_timeout_inside_a_chunk_sends_the_rest_back():
    p = CheckPool(workers=1, timeout=0.3, check=time.sleep)  # any module-level function can be the check
    try:
        results = p.run([(0,), (5,), (0,), (0,), (0,), (0,)])  # chunks of three; the second job hangs
        assert results == [None, ("timeout", {"bound": "time", "limit_s": 0.3}), None, None, None, None]
        assert p.replaced == 1
    finally:
        p.close()


def test_memory_overrun_is_a_verdict_and_the_worker_is_replaced():
    with_bound = CheckPool(workers=1, timeout=10.0, memory_mb=100)
    try:
        huge = "1" * 60_000_000  # reading this job needs more than the 100 MiB the worker may map
        results = with_bound.run([(huge, "1", 1e-6), FAST])
        assert results[0] == ("timeout", {"bound": "memory"})
        assert results[1][0] == "correct"
        assert with_bound.replaced == 1
    finally:
        with_bound.close()


def test_a_dead_worker_is_replaced(pool):
    pool.run([FAST, FAST])
    for pid in pool.pids:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    results = pool.run([FAST, SLOW, FAST])
    assert [r[0] for r in results] == ["correct"] * 3
    assert pool.replaced >= 2


def test_close_stops_the_workers():
    p = CheckPool(workers=2)
    p.run([FAST])
    procs = [w.proc for w in p._workers]
    p.close()
    assert all(not proc.is_alive() for proc in procs)
    assert p.pids == []


def test_inline_checks_have_a_time_bound():
    assert run_inline([FAST], timeout=5.0)[0][0] == "correct"
    assert run_inline([SLOW], timeout=0.0005)[0] == ("timeout", {"bound": "time", "limit_s": 0.0005})


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU: nothing to spread over")
def test_workers_of_a_pinned_parent_use_every_cpu():
    # a trainer pins its OpenMP threads, which binds its main thread (and what it starts) to one core
    script = textwrap.dedent("""
        import os, time
        os.sched_setaffinity(0, {0})
        from reasoner.verifiers.math_answer.pool import CheckPool
        if __name__ == "__main__":
            pool = CheckPool(workers=2)
            assert pool.run([("1", "1", 1e-6)] * 8)[0][0] == "correct"
            deadline = time.monotonic() + 30  # a worker widens its affinity first thing, once started
            while len({len(os.sched_getaffinity(w.proc.pid)) for w in pool._workers}) > 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            print(sorted({len(os.sched_getaffinity(w.proc.pid)) for w in pool._workers}))
            pool.close()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [f"[{os.cpu_count()}]"]


UNGUARDED = """
from reasoner.verifiers.math_answer import MathVerifier
verifier = MathVerifier(workers=2)
print("verdict", verifier.check("x + 1", "1 + x").reason)
"""


def test_a_script_without_a_main_guard_fails_loudly_with_the_fix(tmp_path):
    """Workers import the main script; without the guard each one starts the verifier again and dies.
    That is one clear error naming the fix, not a "check worker died" verdict (reward 0) per check."""
    import subprocess
    import sys
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "WorkerStartError" in run.stderr and 'if __name__ == "__main__":' in run.stderr
    assert "verdict" not in run.stdout
    guarded = tmp_path / "guarded.py"
    guarded.write_text('if __name__ == "__main__":\n' + "".join("    " + line + "\n" for line in UNGUARDED.strip().splitlines()))
    run = subprocess.run([sys.executable, str(guarded)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "verdict correct" in run.stdout
