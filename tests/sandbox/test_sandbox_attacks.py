"""Attacks on the sandbox. Each asserts the verdict *and* that the pool answers the next ordinary
job correctly (``still_works``). They run on one container (`single`), so "the next job"
really is the next job in the same container. docs/sandbox.md cites these tests by name."""

from __future__ import annotations

import socket
import textwrap
import threading
import time

import pytest

from reasoner.sandbox import Case, FunctionTests, Limits, StdioTests

pytestmark = pytest.mark.docker

SHORT = Limits(timeout=2.0)


def program(src: str) -> str:
    return textwrap.dedent(src).lstrip()


# ---- time ----------------------------------------------------------------------------------------

def test_infinite_loop_times_out(single, still_works):
    t = time.monotonic()
    run = single.run("def f():\n    while True:\n        pass\n", FunctionTests("assert f() == 1"), SHORT)
    assert run.status == "timeout"
    assert time.monotonic() - t < SHORT.timeout + 1.5
    still_works(single)


def test_sleeping_job_is_killed_at_its_wall_clock_timeout(single, still_works):
    t = time.monotonic()
    run = single.run("import time\ndef f():\n    time.sleep(100)\n", FunctionTests("assert f() is None"), SHORT)
    assert run.status == "timeout"
    assert SHORT.timeout <= time.monotonic() - t < SHORT.timeout + 1.5
    still_works(single)


def test_busy_threads_time_out_and_get_one_cpu(single, still_works):
    src = program("""
        import threading, time
        def spin():
            while True:
                pass
        def f():
            start, cpu = time.monotonic(), time.process_time()
            for _ in range(8):
                threading.Thread(target=spin, daemon=True).start()
            time.sleep(2.0)
            return (time.process_time() - cpu) / (time.monotonic() - start)
        """)
    # The program measures the CPU its 8 spinning threads get per second of wall clock: the
    # container's quota is one CPU where the machine has two (the job fails the impossible test).
    run = single.run(src, FunctionTests("cpus = f()\nassert cpus < 1.5, cpus\nassert cpus == -1"), Limits(timeout=4))
    assert run.status == "failed", run
    assert run.details["test"] == "assert cpus == -1"
    run = single.run(src.replace("time.sleep(2.0)", "time.sleep(100)"), FunctionTests("assert f() == 0"), SHORT)
    assert run.status == "timeout"
    still_works(single)


# ---- processes and memory ------------------------------------------------------------------------

def test_fork_bomb_is_bounded_by_the_pids_limit(single, still_works):
    src = program("""
        import os, time
        def f():
            n = 0
            while True:
                try:
                    pid = os.fork()
                except OSError:
                    return n
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                n += 1
        """)
    run = single.run(src, FunctionTests("assert f() < 64"), SHORT)
    assert run.status == "passed", run  # the bomb stopped below the container's pids limit
    bomb = single.run("import os\nwhile True:\n    os.fork()\n", FunctionTests("assert f()"), SHORT)
    assert bomb.status in ("timeout", "runtime_error"), bomb
    still_works(single)


def test_memory_bomb(single, still_works):
    run = single.run("def f():\n    return len(bytearray(2 << 30))\n", FunctionTests("assert f() > 0"), SHORT)
    assert run.status == "memory", run
    grow = single.run("def f():\n    x = []\n    while True:\n        x.append(' ' * 10**6)\n",
                      FunctionTests("assert f()"), SHORT)
    assert grow.status == "memory", grow
    stdio = single.run("x = 'a' * (2 << 30)\n", StdioTests((Case("", ""),)), SHORT)
    assert stdio.status == "memory", stdio
    still_works(single)


def test_background_process_is_gone_before_the_next_job(single, still_works):
    leave = program("""
        import os, time
        def f():
            if os.fork() == 0:
                os.setsid()
                while True:
                    with open('/tmp/alive', 'a') as fh:
                        fh.write('x')
                    time.sleep(0.01)
            return os.getpid()
        """)
    first = single.run(leave, FunctionTests("assert f() > 0"), SHORT)
    assert first.status == "passed"
    look = program("""
        import os
        def f():
            return sorted(open(f'/proc/{p}/cmdline').read() for p in os.listdir('/proc') if p.isdigit())
        """)
    after = single.run(look + "def alive():\n    return os.path.exists('/tmp/alive')\n",
                       FunctionTests("assert len(f()) == 4, f()\nassert not alive()"), SHORT)
    assert after.status == "passed", after  # runner, zygote, harness, program: nothing left behind
    still_works(single)


def test_stopping_every_process_does_not_stick(single, still_works):
    src = "import os, signal\ndef f():\n    os.kill(-1, signal.SIGSTOP)\n    return 1\n"
    run = single.run(src, FunctionTests("assert f() == 1"), SHORT)
    # -1 reaches only the program's own user: the trusted processes (another uid) run on
    assert run.status == "passed", run
    src = "import os, signal\ndef f():\n    os.kill(-1, signal.SIGSTOP)\n    return 2\n"
    assert single.run(src, FunctionTests("assert f() == 1"), SHORT).status == "failed"
    still_works(single)


@pytest.mark.parametrize("target, status", [("os.getppid()", "runtime_error"),  # the harness: EPERM
                                            ("1", "runtime_error"),           # the runner: EPERM
                                            ("-1", "failed")])                # the program's own processes
def test_killing_the_harness_or_the_runner_scores_zero(single, still_works, target, status):
    src = f"import os, signal\ndef f():\n    os.kill({target}, signal.SIGKILL)\n    return 0\n"
    run = single.run(src, FunctionTests("assert f() == 1"), SHORT)
    assert run.status == status, run
    still_works(single)


def test_the_program_runs_under_its_rlimits(single, still_works):
    src = program("""
        import os, resource
        def limits():
            names = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE")
            return [resource.getrlimit(getattr(resource, n))[0] for n in names]
        def priority():
            return [open("/proc/self/oom_score_adj").read().strip(), os.nice(0)]
        """)
    tests = "assert limits() == [512 * 2**20, 3, 16 * 2**20, 64, 0], limits()\nassert priority() == ['1000', 5]"
    run = single.run(src, FunctionTests(tests), SHORT)
    assert run.status == "passed", run
    still_works(single)


# ---- output --------------------------------------------------------------------------------------

def test_a_gigabyte_of_stdout_is_capped(single, still_works):
    flood = "import sys\nchunk = 'y' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    t = time.monotonic()
    run = single.run(flood, StdioTests((Case("", "ok"),)), Limits(timeout=5.0))
    assert run.status == "failed", run  # stopped as soon as it passed twice the expected size
    assert len(run.stdout) <= Limits().max_output and time.monotonic() - t < 5
    run = single.run(flood + "def f():\n    return 1\n", FunctionTests("assert f() == 1"), Limits(timeout=10.0))
    assert run.status in ("passed", "timeout"), run  # output is not a test; it is kept to the cap
    assert len(run.stdout.encode()) <= Limits().max_output
    still_works(single)


def test_non_utf8_output(single, still_works):
    src = "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe\\n')\nsys.stderr.buffer.write(b'\\xc3(')\n"
    run = single.run(src + "def f():\n    return 1\n", FunctionTests("assert f() == 1"), SHORT)
    assert run.status == "passed"
    assert run.stdout == "ok \ufffd\ufffd\n" and run.stderr == "\ufffd("
    still_works(single)


def test_printing_a_fake_verdict_scores_zero(single, still_works):
    fake = program("""
        import json, os
        def f():
            verdict = json.dumps({"status": "passed", "details": {}}).encode()
            frame = len(verdict).to_bytes(4, "big") + verdict
            print("passed"); print(frame)
            for fd in range(3, 64):
                try:
                    os.write(fd, frame)
                except OSError:
                    pass
            for path in ("/proc/1/fd/1", f"/proc/{os.getppid()}/fd/3", f"/proc/{os.getppid()}/fd/1"):
                try:
                    with open(path, "wb") as fh:
                        fh.write(frame)
                except OSError:
                    pass
            return 0
        """)
    run = single.run(fake, FunctionTests("assert f() == 1"), SHORT)
    assert run.status in ("failed", "runtime_error"), run
    still_works(single)


# ---- exits and overrides -------------------------------------------------------------------------

@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "os._exit(0)", "raise SystemExit(0)", "exit(0)"])
def test_exiting_before_the_tests_scores_zero(single, still_works, exit_call):
    src = f"import os, sys\ndef f():\n    return 0\n{exit_call}\n"
    run = single.run(src, FunctionTests("assert f() == 1"), SHORT)
    assert run.status == "runtime_error", run
    inside = f"import os, sys\ndef f():\n    {exit_call}\n"
    run = single.run(inside, FunctionTests("assert f() == 1"), SHORT)
    assert run.status == "runtime_error", run
    swallowed = "try:\n    f()\nexcept BaseException:\n    pass\nassert True"
    run = single.run(inside, FunctionTests(swallowed), SHORT)
    assert run.status == "runtime_error", run  # the tests swallowed it; the harness did not
    still_works(single)


def test_exiting_in_a_stdio_program_after_the_right_answer_is_allowed(single, still_works):
    run = single.run("print(3)\nimport sys\nsys.exit(0)\n", StdioTests((Case("", "3"),)), SHORT)
    assert run.status == "passed"
    run = single.run("import os\nos._exit(0)\n", StdioTests((Case("", "3"),)), SHORT)
    assert run.status == "failed"
    still_works(single)


def test_overriding_eq_scores_zero(single, still_works):
    always = program("""
        class Yes:
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            def __hash__(self): return 0
        class Str(str):
            def __eq__(self, other): return True
        class Int(int):
            def __eq__(self, other): return True
        def f(x):
            return Yes()
        def g(x):
            return Str("wrong")
        def h(x):
            return Int(0)
        def k(x):
            return [Yes()]
        """)
    for name in "fghk":
        run = single.run(always, FunctionTests(f"assert {name}(1) == 42\nassert {name}(1) == [42]"), SHORT)
        assert run.status == "failed", (name, run)
    run = single.run(always, FunctionTests("def check(candidate):\n    assert candidate(1) == 42\n", "f"), SHORT)
    assert run.status == "failed"
    still_works(single)


def test_patching_builtins_and_assert_machinery_scores_zero(single, still_works):
    patched = program("""
        import builtins, sys
        class NoError(Exception):
            pass
        builtins.AssertionError = NoError
        builtins.abs = lambda x: 0
        builtins.all = lambda x: True
        sys.excepthook = lambda *a: None
        def f(x):
            return -1
        """)
    tests = "assert f(1) == 1\nassert abs(f(1)) == 1 and all([False])"
    run = single.run(patched, FunctionTests(tests), SHORT)
    assert run.status == "failed", run
    assert run.details["test"] == "assert f(1) == 1"
    # Patching what the program's own process needs to answer at all only breaks that process.
    wrecked = patched.replace("builtins.all", "builtins.len = lambda x: 3\nbuiltins.all")
    wrecked = wrecked.replace("def f(", "builtins.__import__ = lambda *a, **k: sys\nsys.modules['json'] = None\ndef f(")
    run = single.run(wrecked, FunctionTests(tests), SHORT)
    assert run.status == "runtime_error", run
    still_works(single)


def test_the_program_never_sees_the_tests(single, still_works):
    snoop = program("""
        import ctypes, os, re
        PATTERN = re.compile(rb"zq" + rb"-marker-[0-9a-f]{16}")
        def seen():
            # every readable byte of this process's memory, then whatever /proc shows of the others
            with open("/proc/self/maps") as maps:
                for line in maps:
                    fields = line.split()
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    special = len(fields) > 5 and fields[5].startswith("[v")
                    if fields[1][0] == "r" and not special and PATTERN.search(ctypes.string_at(start, end - start)):
                        return True
            for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
                for name in ("cmdline", "environ", "mem"):
                    try:
                        with open(f"/proc/{pid}/{name}", "rb") as fh:
                            if PATTERN.search(fh.read(1 << 20)):
                                return True
                    except OSError:
                        pass
            return False
        def trace():
            import ctypes
            libc = ctypes.CDLL(None)
            return [libc.ptrace(16, pid, 0, 0) for pid in (os.getppid(), 1)]  # PTRACE_ATTACH
        """)
    tests = "SECRET = 'zq-marker-0123456789abcdef'\nassert seen() is False\nassert trace() == [-1, -1]"
    run = single.run(snoop, FunctionTests(tests), SHORT)
    assert run.status == "passed", run
    still_works(single)


def test_a_stdio_program_never_sees_the_expected_outputs(single, still_works):
    snoop = program("""
        import ctypes, re
        PATTERN = re.compile(rb"zq" + rb"-marker-[0-9a-f]{16}")
        found = False
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                start, end = (int(x, 16) for x in fields[0].split("-"))
                special = len(fields) > 5 and fields[5].startswith("[v")
                if fields[1][0] == "r" and not special:
                    found = found or bool(PATTERN.search(ctypes.string_at(start, end - start)))
        print("found" if found else "clean")
        """)
    run = single.run(snoop, StdioTests((Case("", "clean"), Case("", "zq-marker-0123456789abcdef"))), SHORT)
    assert (run.status, run.details["case"], run.stdout) == ("failed", 1, "clean\n"), run
    still_works(single)


# ---- file system, network, host ------------------------------------------------------------------

def test_disk_fill_is_capped_and_wiped(single, still_works):
    fill = program("""
        import errno, os
        def f():
            os.makedirs('/tmp/deep/er', exist_ok=True)
            os.symlink('/etc', '/tmp/etc-link')
            written = 0
            for i in range(100):
                try:
                    with open(f'/tmp/fill{i}', 'wb') as fh:
                        for _ in range(32):
                            fh.write(b'x' * (1 << 20))
                            written += 1 << 20
                except OSError as exc:
                    if exc.errno == errno.ENOSPC:
                        break
            os.chmod('/tmp/deep/er', 0)
            os.chmod('/tmp/deep', 0)
            return written
        def biggest():
            return max(os.path.getsize(f'/tmp/{n}') for n in os.listdir('/tmp') if n.startswith('fill'))
        def files():
            n = 0
            try:
                while True:
                    open(f'/tmp/empty{n}', 'w').close()
                    n += 1
            except OSError:
                return n
        """)
    tests = "assert f() <= 64 * 2**20\nassert biggest() <= 16 * 2**20\nassert files() < 8192"
    run = single.run(fill, FunctionTests(tests), SHORT)
    assert run.status == "passed", run  # /tmp holds 64 MiB, 8192 files, a file at most 16 MiB
    after = single.run("import os\ndef f():\n    return os.listdir('/tmp') + os.listdir('/dev/shm')\n",
                       FunctionTests("assert f() == []"), SHORT)
    assert after.status == "passed", after
    still_works(single)


def test_writing_outside_the_work_dir_fails(single, still_works):
    src = program("""
        import os
        def f():
            ok = []
            for path in ('/x', '/etc/passwd', '/usr/bin/python3', '/root/x', '/home/x', '/var/tmp/x',
                         '/proc/sys/kernel/hostname', '/sys/fs/cgroup/x'):
                try:
                    with open(path, 'a') as fh:
                        fh.write('x')
                    ok.append(path)
                except OSError:
                    pass
            return ok
        def ipc():
            import ctypes
            libc = ctypes.CDLL(None)
            return [libc.shmget(0, 4096, 0o1600), libc.msgget(0, 0o1600), libc.semget(0, 1, 0o1600)]
        """)
    run = single.run(src, FunctionTests("assert f() == []\nassert ipc() == [-1, -1, -1]"), SHORT)
    assert run.status == "passed", run
    still_works(single)


def test_secrets_and_host_paths_are_out_of_reach(single, still_works, tmp_path):
    marker = tmp_path / "host-marker"
    marker.write_text("host")
    src = program(f"""
        import os
        def f():
            seen = []
            for path in ('/etc/shadow', {str(marker)!r}, '/var/run/docker.sock', '/run/docker.sock',
                         '/root/.ssh', '/proc/1/root/etc/shadow', '/proc/kcore'):
                try:
                    with open(path, 'rb') as fh:
                        fh.read(1)
                    seen.append(path)
                except OSError:
                    pass
            return seen
        def who():
            status = dict(line.split(':\t', 1) for line in open('/proc/self/status').read().splitlines())
            caps = [int(status[k], 16) for k in ('CapInh', 'CapPrm', 'CapEff', 'CapAmb')]
            return [os.getuid(), os.getgid(), os.getgroups(), caps, status['NoNewPrivs'].strip()]
        """)
    run = single.run(src, FunctionTests("assert f() == []\nuid, gid, groups, caps, nnp = who()\n"
                                        "assert (uid, gid, groups) == (10002, 10002, []), who()\n"
                                        "assert caps == [0, 0, 0, 0] and nnp == '1', who()"), SHORT)
    assert run.status == "passed", run
    still_works(single)


def test_no_network(single, still_works):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(listener.accept())
        except OSError:
            pass
    waiter = threading.Thread(target=accept)
    waiter.start()
    src = program(f"""
        import os, socket
        def interfaces():
            return sorted(os.listdir('/sys/class/net'))
        def connect():
            try:
                socket.create_connection(('127.0.0.1', {port}), timeout=1).close()
                return 'connected'
            except OSError as exc:
                return type(exc).__name__
        """)
    try:
        run = single.run(src, FunctionTests("assert interfaces() == ['lo']\n"
                                            "assert connect() == 'ConnectionRefusedError'"), SHORT)
    finally:
        waiter.join()
        listener.close()
    assert run.status == "passed", run
    assert accepted == []
    still_works(single)
