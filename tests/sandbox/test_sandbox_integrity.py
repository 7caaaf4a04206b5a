"""Attacks on the integrity of a verdict and of the container between jobs: programs written
the way a policy that samples millions of them would find these holes. Each attack runs on one
warm container (`single`) and is followed by a correct "victim" program in the same container
that must still pass. docs/sandbox.md cites these tests by name."""

from __future__ import annotations

import json
import textwrap

import pytest

from reasoner.sandbox import FunctionTests, Limits
from reasoner.sandbox.inside import wire

pytestmark = pytest.mark.docker

SHORT = Limits(timeout=3.0)

HUMANEVAL_FLOAT = FunctionTests(textwrap.dedent("""
    def check(candidate):
        assert abs(candidate(1.0, 2.0) - 1.5) < 1e-6
        assert round(candidate(0.25, 0.75), 3) == 0.5
        assert len(str(candidate(2.0, 4.0))) >= 3
        assert min(candidate(1.0, 1.0), 5) == 1.0
    """), "mean2")
MEAN_OK = "def mean2(a, b):\n    return (a + b) / 2\n"

MBPP_SET = FunctionTests(textwrap.dedent("""
    assert set(evens([1, 2, 3, 4])) == set([2, 4])
    assert sorted(evens([4, 3, 2])) == sorted([2, 4])
    assert len(evens([1, 3])) == 0
    """))
EVENS_OK = "def evens(xs):\n    return [x for x in xs if x % 2 == 0]\n"


def program(src: str) -> str:
    return textwrap.dedent(src).lstrip()


def victims(sandbox) -> None:
    """Correct programs right after an attack, in the same container: they pass, wrong ones fail."""
    for src, tests in ((MEAN_OK, HUMANEVAL_FLOAT), (EVENS_OK, MBPP_SET)):
        run = sandbox.run(src, tests, SHORT)
        assert run.status == "passed", run
    wrong = sandbox.run(EVENS_OK.replace("== 0", "== 1"), MBPP_SET, SHORT)
    assert wrong.status == "failed", wrong


# ---- the program's messages and names ------------------------------------------------------------

FORGED_NAMES = program("""
    import builtins, sys
    class Everything:
        # what the tests would read as their builtins if this object became their __builtins__
        def __call__(self, *args):
            return 0
        def __getitem__(self, name):
            if name in ("abs", "round", "len", "min", "set", "sorted", "str"):
                return lambda *args, **kwargs: 0
            return getattr(builtins, name)
    everything = Everything()
    def mean2(a, b):
        return 0
    def evens(xs):
        return 0
    wire = sys.modules["reasoner.sandbox.inside.wire"]
    honest_pack = wire.pack
    def pack(obj):
        # rewrite the ready message: announce our object under the tests' trusted names
        if isinstance(obj, dict) and isinstance(obj.get("ready"), dict):
            names = obj["ready"]["names"]
            for forged in ("__builtins__", "__name__", "sorted", "set", "abs", "len", "check",
                           "not an identifier", "__import__", "_private"):
                names[forged] = names["everything"]
        return honest_pack(obj)
    wire.pack = pack
    """)


def test_forged_names_in_the_ready_message_do_not_reach_the_tests(single):
    for tests in (HUMANEVAL_FLOAT, MBPP_SET):
        run = single.run(FORGED_NAMES, tests, SHORT)
        assert run.status in ("failed", "runtime_error"), run
        assert run.status != "passed"
    victims(single)


def test_a_program_defining_builtin_names_does_not_change_the_tests(single):
    shadow = program("""
        def abs(x):
            return 0
        def round(x, n=0):
            return 0.5
        def len(x):
            return 3
        def min(*a):
            return 1.0
        def set(x):
            return 1
        def sorted(x):
            return 1
        def str(x):
            return "xyz"
        def mean2(a, b):
            return 0
        def evens(xs):
            return 0
        """)
    for tests in (HUMANEVAL_FLOAT, MBPP_SET):
        run = single.run(shadow, tests, SHORT)
        assert run.status != "passed", run
    # A correct program with helpers of those names is judged on its own functions and passes.
    helpers = "def sorted(xs):\n    return list(xs)\ndef evens(xs):\n    return sorted(x for x in xs if x % 2 == 0)\n"
    run = single.run(helpers, MBPP_SET, SHORT)
    assert run.status == "passed", run
    victims(single)


def test_program_names_the_tests_bind_stay_the_tests(single):
    # The tests' own helper `expected` and their `check` win over the program's of the same name,
    # and the function under test is still found.
    tests = FunctionTests(textwrap.dedent("""
        def expected(a, b):
            return (a + b) / 2
        def check(candidate):
            assert candidate(1.0, 3.0) == expected(1.0, 3.0)
        """), "mean2")
    cheat = "def expected(a, b):\n    return 0\ndef check(candidate):\n    pass\ndef mean2(a, b):\n    return 0\n"
    run = single.run(cheat, tests, SHORT)
    assert run.status == "failed", run
    run = single.run(MEAN_OK, tests, SHORT)
    assert run.status == "passed", run
    victims(single)


# ---- the program's exceptions ----------------------------------------------------------------------

@pytest.mark.parametrize("raised", ["StopIteration", "StopAsyncIteration", "GeneratorExit", "KeyboardInterrupt",
                                    "SystemExit", "Stop"])
def test_program_exceptions_cannot_end_the_tests_iteration(single, raised):
    src = program(f"""
        class Stop(StopIteration):
            pass
        def is_even(x):
            raise {raised}
        def double(x):
            raise {raised}
        """)
    tests = FunctionTests(textwrap.dedent("""
        assert all(map(is_even, [2, 4, 6]))
        for got, want in zip(map(double, [1, 2]), [2, 4]):
            assert got == want
        assert list(filter(is_even, [1, 2])) == [2]
        """))
    run = single.run(src, tests, SHORT)
    assert run.status in ("runtime_error", "failed"), run
    humaneval = FunctionTests("def check(candidate):\n    assert all(map(candidate, [2, 4]))\n", "is_even")
    run = single.run(src, humaneval, SHORT)
    assert run.status in ("runtime_error", "failed"), run
    good = "def is_even(x):\n    return x % 2 == 0\ndef double(x):\n    return 2 * x\n"
    run = single.run(good, tests, SHORT)
    assert run.status == "passed", run
    victims(single)


# ---- program text leaving the container ----------------------------------------------------------

HUGE_ERROR = program("""
    import sys
    candidate = sys.modules["reasoner.sandbox.inside.candidate"]
    # the program's own process reports its load error: make that report 30 MB, with lone surrogates
    candidate._describe = lambda exc: {"type": "ValueError", "message": "\\ud800" + "x" * 30_000_000,
                                       "extra": ["\\udfff" * 1000] * 5000}
    raise ValueError("boom")
    """)
SURROGATES = program("""
    def f(x):
        raise ValueError("bad \\ud800 text \\udc80")
    """)


def _valid_and_small(details: dict) -> None:
    text = json.dumps(details, ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogates
    assert len(text) <= wire.MAX_TEXT, len(text)


def test_a_30_mb_error_frame_is_capped(single):
    run = single.run(HUGE_ERROR, FunctionTests("assert f(1) == 1"), SHORT)
    assert run.status == "runtime_error", run.status
    _valid_and_small(run.details)
    run = single.run(SURROGATES, FunctionTests("assert f(1) == 1"), SHORT)
    assert run.status == "runtime_error", run.status
    _valid_and_small(run.details)
    assert "bad \ufffd" in run.details["error"] and "\ufffd\ufffd\ufffd text" in run.details["error"], run.details
    victims(single)


def test_lone_surrogates_reach_the_cli_and_the_evaluation_writer_as_valid_utf8(single, tmp_path):
    from click.testing import CliRunner

    from reasoner.cli import main
    from reasoner.evaluate import write
    from reasoner.verifiers.code import CodeVerifier

    (tmp_path / "p.py").write_text(HUGE_ERROR, encoding="utf-8")
    (tmp_path / "t.py").write_text("assert f(1) == 1\n")
    result = CliRunner().invoke(main, ["sandbox", "run", str(tmp_path / "p.py"), "--tests", str(tmp_path / "t.py")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout_bytes.decode("utf-8"))  # strict: valid UTF-8
    assert shown["status"] == "runtime_error"
    assert len(result.stdout_bytes) < 4 * wire.MAX_TEXT  # 64 Ki characters, at most 3 bytes each here

    verdict = CodeVerifier.verdict(single.run(SURROGATES, FunctionTests("assert f(1) == 1"), SHORT))
    sample = {"text": "```python\n...\n```", "correct": verdict.ok, "reason": verdict.reason,
              "details": verdict.details}
    write(tmp_path / "eval", {"tasks": {}}, {"code": [{"id": "x", "completions": [sample]}]})
    row = json.loads((tmp_path / "eval" / "code.jsonl").read_bytes().decode("utf-8"))
    assert row["completions"][0]["reason"] == "runtime_error"
    assert "\ufffd" in row["completions"][0]["details"]["error"]
    victims(single)


# ---- the trusted processes' limits, priority, affinity and I/O class ----------------------------

TAMPER = program("""
    import ctypes, os, resource
    def parent_of(pid):
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    def trusted():
        harness = os.getppid()
        return {"runner": 1, "zygote": parent_of(harness), "harness": harness}
    def tamper():
        libc = ctypes.CDLL(None, use_errno=True)
        done = []
        for who, pid in trusted().items():
            for name, attempt in (
                    ("nofile", lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (8, 8))),
                    ("cpu", lambda: resource.prlimit(pid, resource.RLIMIT_CPU, (1, 1))),
                    ("register", lambda: resource.prlimit(pid, resource.RLIMIT_MSGQUEUE, (12345, 819200))),
                    ("nice", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)),
                    ("affinity", lambda: os.sched_setaffinity(pid, {0})),
                    ("ioprio", lambda: libc.syscall(251, 1, pid, 3 << 13) == 0 or 1 / 0)):  # idle class
                try:
                    attempt()
                    done.append(f"{who}:{name}")
                except (OSError, ZeroDivisionError):
                    pass
        return done
    def register():
        try:
            return resource.prlimit(trusted()["zygote"], resource.RLIMIT_MSGQUEUE)[0]
        except PermissionError:  # not even readable
            return None
    """)


def test_tampering_with_the_trusted_processes_is_refused_and_does_not_reach_the_next_job(single):
    """A job that tries to lower the open-file and CPU limits of PID 1, the zygote and its
    harness, renice and pin them, set their I/O class to idle, or keep a value in their soft
    rlimits as a register for a later job: every attempt is refused (another uid), and the next
    job neither fails for it nor reads the register."""
    run = single.run(TAMPER, FunctionTests("done = tamper()\nassert done == [], done"), SHORT)
    assert run.status == "passed", run
    run = single.run(TAMPER, FunctionTests("assert register() != 12345"), SHORT)
    assert run.status == "passed", run
    victims(single)


def test_lowering_the_harness_open_file_limit_is_the_programs_failure(single):
    """A stdio program that tries to lower its harness's open-file limit (which would make the
    next case impossible to run) is refused, and that is an ordinary failure of the program
    (runtime_error), never "could not judge". Were it to succeed, the harness sees its own limits
    changed and still answers runtime_error."""
    src = program("""
        import os, resource
        harness = int(open(f"/proc/{os.getppid()}/stat").read().rsplit(")", 1)[1].split()[1])
        resource.prlimit(harness, resource.RLIMIT_NOFILE, (4, 4))
        print(int(input()) * 2)
        """)
    from reasoner.sandbox import Case, StdioTests
    run = single.run(src, StdioTests((Case("1", "2"), Case("2", "4"), Case("3", "6"))), SHORT)
    assert run.status == "runtime_error", run
    assert "PermissionError" in run.stderr, run  # refused: the harness is another user's
    victims(single)


def test_a_container_is_replaced_after_jobs_per_container_jobs():
    from reasoner.sandbox.pool import Sandbox
    with Sandbox(workers=1, limits=SHORT, jobs_per_container=3) as sandbox:
        ids = []
        for _ in range(7):
            assert sandbox.run(MEAN_OK, HUMANEVAL_FLOAT).status == "passed"
            ids.append(sandbox.container_ids()[:1])
        assert sandbox.replaced == 2
        assert [i for i in ids if i] and len({tuple(i) for i in ids}) >= 3
        with pytest.raises(ValueError):
            Sandbox(jobs_per_container=0)


# ---- kernel interfaces and channels between jobs ------------------------------------------------

KERNEL = program("""
    import ctypes, os, socket
    libc = ctypes.CDLL(None, use_errno=True)
    def io_uring():
        params = ctypes.create_string_buffer(120)
        out = []
        for call in (lambda: libc.syscall(425, 8, params), lambda: libc.syscall(426, 0, 1, 0, 0, 0, 0),
                     lambda: libc.syscall(427, 0, 0, 0, 0)):  # io_uring_setup, _enter, _register
            ctypes.set_errno(0)
            out.append((call(), ctypes.get_errno()))
        return out
    def sockets():
        out = []
        for family, kind in ((socket.AF_VSOCK, socket.SOCK_STREAM), (socket.AF_NETLINK, socket.SOCK_RAW)):
            try:
                socket.socket(family, kind).close()
                out.append("opened")
            except OSError as exc:
                out.append(exc.errno)
        return out
    def namespaces():
        return [libc.unshare(0x10000000), libc.unshare(0x20000000)]  # CLONE_NEWUSER, CLONE_NEWPID
    """)


def test_io_uring_vsock_netlink_and_new_namespaces_are_denied(single):
    """The container's seccomp profile (sandbox/seccomp.py) refuses io_uring, AF_VSOCK and
    AF_NETLINK sockets and new namespaces with an error the program sees; a C++ program with a
    thread still compiles and runs, and so does a forking Python program."""
    tests = ("assert io_uring() == [(-1, 1)] * 3, io_uring()\nassert sockets() == [97, 97], sockets()\n"
             "assert namespaces() == [-1, -1]")
    run = single.run(KERNEL, FunctionTests(tests), SHORT)
    assert run.status == "passed", run
    from reasoner.sandbox import Case, StdioTests
    cpp = ("#include <iostream>\n#include <thread>\n"
           "int main(){long a,b;std::cin>>a>>b;std::thread t([&]{a+=b;});t.join();std::cout<<a<<'\\n';}\n")
    run = single.run(cpp, StdioTests((Case("2 3", "5"), Case("-4 4", "0"))), Limits(timeout=20.0), language="cpp")
    assert run.status == "passed", run
    fork = "import os\npid = os.fork()\nif pid == 0:\n    os._exit(3)\nprint(os.waitpid(pid, 0)[1] >> 8)\n"
    assert single.run(fork, StdioTests((Case("", "3"),)), SHORT).status == "passed"
    victims(single)


def test_an_abstract_unix_socket_does_not_outlive_its_job(single):
    """A job binds an abstract unix socket and leaves a process holding it, to answer the next
    job: the next job finds the name free and nothing listening."""
    hold = program("""
        import os, socket, time
        def f():
            if os.fork() == 0:
                os.setsid()
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.bind("\\0reasoner-register")
                s.listen(1)
                while True:
                    conn, _ = s.accept()
                    conn.sendall(b"42")
            time.sleep(0.2)
            return 1
        """)
    assert single.run(hold, FunctionTests("assert f() == 1"), SHORT).status == "passed"
    look = program("""
        import socket
        def f():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect("\\0reasoner-register")
                return s.recv(8)
            except OSError as exc:
                return type(exc).__name__
        """)
    run = single.run(look, FunctionTests("assert f() == 'ConnectionRefusedError', f()"), SHORT)
    assert run.status == "passed", run
    victims(single)


READ_PID = "import os\ndef f():\n    return os.getpid()\n"


def _next_pid(sandbox) -> int:
    run = sandbox.run(READ_PID, FunctionTests("pid = f()\nassert pid == 0, pid"), SHORT)
    return int(run.details["error"].split(": ")[1])


def test_the_pid_counter_carries_nothing_to_the_next_job(single):
    """A job writes a value into the PID counter (threads started, or the stdio case it stops
    at) for the next job to read from its own pid: the next job reads the same pid whatever the
    value (the runner pads the counter to a fixed step, and a job that starts processes or
    threads of its own retires the container)."""
    from reasoner.sandbox import Case, StdioTests
    threads = "import threading\ndef f(n):\n    for _ in range(n):\n        threading.Thread(target=len, args=('',)).start()\n" \
              "    return n\n"
    after = set()
    for n in (1, 5):
        assert single.run(threads, FunctionTests(f"assert f({n}) == {n}"), SHORT).status == "passed"
        after.add(_next_pid(single))
    assert len(after) == 1, after  # a fresh container each time: the same first pid, whatever n was
    stops = set()
    cases = StdioTests(tuple(Case(str(k), str(k)) for k in range(6)))
    for wrong_at in (0, 2, 5):
        _next_pid(single)
        base = _next_pid(single)
        src = f"k = int(input())\nprint(k + (1 if k == {wrong_at} else 0))\n"
        assert single.run(src, cases, SHORT).status == "failed"
        stops.add(_next_pid(single) - base)
    assert len(stops) == 1, stops  # where a stdio program stopped cannot be read from the counter
    victims(single)


def test_a_job_the_container_could_not_judge_is_retried_in_a_fresh_one():
    """Something outside the job breaks the container's zygote (here: its open-file limit is
    lowered from outside with ``docker exec``): the job in flight gets an infrastructure
    ``sandbox_error`` from the runner, the container retires, and the job is judged again in a
    fresh container, never scored against the program; the pool does not keep feeding the
    broken container."""
    import subprocess

    from reasoner.sandbox.inside.privileges import TRUSTED
    from reasoner.sandbox.pool import Sandbox
    with Sandbox(workers=1, limits=SHORT) as sandbox:
        assert sandbox.run(MEAN_OK, HUMANEVAL_FLOAT).status == "passed"
        cid = sandbox.container_ids()[0]
        zygote = subprocess.run(["docker", "exec", cid, "cat", "/proc/1/task/1/children"], capture_output=True,
                                text=True, check=True).stdout.split()[0]
        break_it = f"import resource; resource.prlimit({zygote}, resource.RLIMIT_NOFILE, (3, 3))"
        subprocess.run(["docker", "exec", "-u", f"{TRUSTED}:{TRUSTED}", cid, "python3", "-c", break_it], check=True)
        run = sandbox.run(MEAN_OK, HUMANEVAL_FLOAT)
        assert run.status == "passed", run
        assert sandbox.retried == 1 and sandbox.replaced == 1 and cid not in sandbox.container_ids()
        assert "could not judge" in run.details["lost_hosts"][0], run.details
        victims(sandbox)
