"""Sandbox throughput with one Docker endpoint and with two, side by side in one run.

    sudo python bench/sandbox_hosts_bench.py [--repeat 4] [--rounds 3]

Every configuration runs the same jobs: HumanEval's canonical solutions against their tests,
each problem ``--repeat`` times, all submitted at once (as the code verifier does with a
batch). The rate is jobs over wall time, after a warm-up; the median of ``--rounds`` rounds,
the configurations interleaved within each round so that a change in the machine's load hits
them alike. "jobs per endpoint" shows how the pool spread the last round's jobs.

The second endpoint is the local daemon under a second name, or a second ``dockerd`` on this
machine (its own socket, data root and network namespace: ``tests/sandbox/docker_endpoints.py``;
needs root), loaded with the sandbox image. Both share this machine's cores, so this measures
what spreading costs, not what a second machine adds. Prints a Markdown table
(docs/benchmarks.md, ``## Sandbox``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from reasoner.sandbox import FunctionTests, Job, engine
from reasoner.sandbox.pool import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "sandbox"))
from docker_endpoints import SecondDaemon  # noqa: E402
from sandbox_bench import humaneval  # noqa: E402  (same directory)


def configurations(second: str) -> list[tuple[str, list[str]]]:
    local = engine.endpoint()
    return [
        ("1: the local daemon", [f"{local}?workers=2"]),
        ("2: the local daemon twice", [f"{local}?workers=1", f"{local}?workers=1"]),
        ("2: the local daemon + a second daemon", [f"{local}?workers=1", f"{second}?workers=1"]),
        ("1: the local daemon", [f"{local}?workers=4"]),
        ("2: the local daemon + a second daemon", [f"{local}?workers=2", f"{second}?workers=2"]),
    ]


def measure(hosts: list[str], jobs: list[Job]) -> dict:
    with Sandbox(hosts=hosts) as sandbox:
        sandbox.run_many(jobs[:4 * sandbox.workers])  # warm-up, as in a long training run
        before = [h["executed"] for h in sandbox.host_status()]
        start = time.perf_counter()
        runs = sandbox.run_many(jobs)
        wall = time.perf_counter() - start
        spread = [h["executed"] - b for h, b in zip(sandbox.host_status(), before)]
        return {"rate": len(jobs) / wall, "passed": sum(r.passed for r in runs), "spread": spread,
                "containers": [h.workers for h in sandbox.hosts]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4, help="each problem this many times")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows the median")
    args = parser.parse_args()
    problem = SecondDaemon.problem()
    if problem:
        raise SystemExit(f"cannot start a second Docker daemon: {problem}")
    jobs = [Job(p["prompt"] + p["canonical_solution"], FunctionTests(p["test"], p["entry_point"]))
            for p in humaneval() * args.repeat]
    second = SecondDaemon()
    try:
        second.start()
        second.load()
        configs = configurations(second.unix)
        rates: list[list[float]] = [[] for _ in configs]
        last: list[dict] = [{} for _ in configs]
        load = [os.getloadavg()[0]]
        for _ in range(args.rounds):
            for k, (_, hosts) in enumerate(configs):
                last[k] = measure(hosts, jobs)
                rates[k].append(last[k]["rate"])
                load.append(os.getloadavg()[0])
    finally:
        second.remove()

    print(f"HumanEval canonical solutions x{args.repeat} ({len(jobs)} jobs, all submitted at once), median of "
          f"{args.rounds} rounds; {platform.node()}, {os.cpu_count()} cores, load average (1 min) "
          f"{min(load):.1f}-{max(load):.1f} during the run\n")
    print("| endpoints | containers | executions/s | rounds (min-max) | jobs per endpoint | passed |")
    print("|---|---|---:|---:|---|---:|")
    for (name, _), r, row in zip(configs, rates, last):
        print(f"| {name} | {' + '.join(map(str, row['containers']))} | {statistics.median(r):.1f} | "
              f"{min(r):.1f}-{max(r):.1f} | {' / '.join(map(str, row['spread']))} | {row['passed']}/{len(jobs)} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
