"""The program's side of a job, inside the container: the only place untrusted code runs.

The harness forks this process *before* it reads the tests, so the tests are never in its
memory. Everything this process says goes through one socket to the harness, and the harness
reads it as plain data only (``wire.decode``): whatever the program does to itself here (patch
builtins, override ``__eq__``, write fake frames on the socket) cannot change a verdict.

* `serve_functions`: load the program once, then answer the harness's calls to its functions.
* `serve_stdio`: compile the program (``g++`` for C++), then fork one fresh process per case
  with the case's stdin and stdout pipes, and report how each one ended.
"""

from __future__ import annotations

import builtins
import io
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import traceback

from reasoner.sandbox.inside import wire

FILE_BYTES = 16 << 20   # RLIMIT_FSIZE: largest file a program may write
OPEN_FILES = 64         # RLIMIT_NOFILE
NICE = 5                # the runner (nice 0) stays responsive next to a busy program
MEMORY_EXIT = 211       # exit status a Python stdio program reports a MemoryError with
WORK_DIR = "/tmp"
CPP_FLAGS = ("-O2", "-std=c++17", "-pipe")
COMPILE_MEMORY_MB = 1024


def apply_limits(memory_mb: int, cpu_seconds: float, untrusted: bool = True) -> None:
    """rlimits for the process about to run the program (inherited by its children)."""
    mem = int(memory_mb) << 20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = max(1, int(math.ceil(cpu_seconds)))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_BYTES, FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if untrusted:
        # Dumpable again: this process holds nothing but the program, and /proc/self then works
        # as usual for it (the harness and the runner stay not dumpable).
        set_dumpable(True)
        with open("/proc/self/oom_score_adj", "w") as f:  # the out-of-memory killer takes this one first
            f.write("1000")
        os.nice(NICE)


def set_dumpable(on: bool) -> None:
    import ctypes
    if ctypes.CDLL(None, use_errno=True).prctl(4, int(on), 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def _send(sock: socket.socket, obj) -> None:
    sock.sendall(wire.pack(obj))


def _recv(sock: socket.socket):
    return wire.read_frame(sock.fileno())


def _describe(exc: BaseException) -> dict:
    try:
        message = str(exc)[:2000]
    except Exception:  # noqa: BLE001 - a __str__ of the program's own making
        message = "<unprintable>"
    return {"type": type(exc).__name__[:100], "message": message}


def _traceback() -> str:
    """The current exception's traceback, without this module's own frames."""
    try:
        kind, value, tb = sys.exc_info()
        while tb is not None and tb.tb_frame.f_code.co_filename.startswith("/sandbox/"):
            tb = tb.tb_next
        return "".join(traceback.format_exception(kind, value, tb))[-8000:]
    except Exception:  # noqa: BLE001
        return ""


def _print_traceback() -> None:
    try:
        sys.stderr.write(_traceback())
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass


def _remember_source(program: str) -> None:
    """Let tracebacks quote the program's lines, as they would for a file."""
    import linecache
    linecache.cache["<program>"] = (len(program), None, program.splitlines(True), "<program>")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass


def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:  # noqa: BLE001
        pass
    return 1


def _compile_error(exc: BaseException) -> dict:
    out = _describe(exc)
    if isinstance(exc, SyntaxError):
        out["line"] = exc.lineno
        out["text"] = (exc.text or "").rstrip()[:500]
    return {"compile_error": out}


# ---- function tests --------------------------------------------------------------------------

class Objects:
    """Objects handed to the harness as opaque references, kept alive here."""

    def __init__(self):
        self.by_ref: dict[int, object] = {}
        self.ref_of: dict[int, int] = {}

    def ref(self, obj) -> wire.Ref:
        key = id(obj)
        ref = self.ref_of.get(key)
        if ref is None:
            ref = len(self.by_ref) + 1
            self.by_ref[ref] = obj
            self.ref_of[key] = ref
        return wire.Ref(ref, type(obj).__name__)

    def get(self, ref: int, _type: str = ""):
        try:
            return self.by_ref[ref]
        except KeyError:
            raise LookupError(f"no object #{ref}") from None

    def encode(self, value):
        try:
            return wire.encode(value, self.ref)
        except (wire.WireError, RecursionError, MemoryError, TypeError, ValueError):
            return wire.encode(self.ref(value))


def serve_functions(sock: socket.socket, program: str, memory_mb: int, timeout: float) -> None:
    """Load the program, report its callables, then run each call the harness sends."""
    apply_limits(memory_mb, timeout + 1)
    objects = Objects()
    _remember_source(program)
    try:
        code = compile(program, "<program>", "exec")
    except (SyntaxError, ValueError) as exc:
        _send(sock, _compile_error(exc))
        return
    namespace = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        exec(code, namespace)
        names = {k: objects.ref(v).id for k, v in list(namespace.items())
                 if isinstance(k, str) and not k.startswith("__") and callable(v)}
        reply = {"ready": {"names": names}}
    except SystemExit as exc:
        reply = {"exit": _exit_status(exc)}
    except MemoryError:
        reply = {"error": {"type": "MemoryError", "message": ""}}
    except BaseException as exc:  # noqa: BLE001 - the program's exception is a result
        _print_traceback()
        reply = {"error": _describe(exc)}
    _flush()
    _send(sock, reply)
    if "ready" not in reply:
        return
    while True:
        msg = _recv(sock)
        if msg is None:
            return
        try:
            reply = {"ok": objects.encode(_perform(msg, objects))}
        except SystemExit as exc:
            _flush()
            _send(sock, {"exit": _exit_status(exc)})
            return
        except MemoryError:
            reply = {"raise": {"type": "MemoryError", "message": ""}}
        except BaseException as exc:  # noqa: BLE001 - shown by the harness if the tests did not expect it
            reply = {"raise": {**_describe(exc), "traceback": _traceback()}}
        _flush()
        _send(sock, reply)


def _perform(msg: dict, objects: Objects):
    target = objects.get(msg["ref"])
    op = msg["op"]
    if op == "call":
        args = wire.decode(msg.get("args", []), objects.get)
        kwargs = wire.decode(msg.get("kwargs", {"$": "dict", "v": []}), objects.get)
        return target(*args, **kwargs)
    if op == "getattr":
        return getattr(target, msg["name"])
    if op == "getitem":
        return target[wire.decode(msg["arg"], objects.get)]
    if op == "contains":
        return wire.decode(msg["arg"], objects.get) in target
    if op == "len":
        return len(target)
    if op == "iter":
        return iter(list(target))
    if op == "bool":
        return bool(target)
    if op == "str":
        return str(target)
    raise ValueError(f"unknown operation {op!r}")


# ---- stdin/stdout tests ----------------------------------------------------------------------

def serve_stdio(sock: socket.socket, program: str, language: str, memory_mb: int, timeout: float) -> None:
    """Compile once, then run one fresh process per case the harness asks for."""
    if language == "python":
        _remember_source(program)
        try:
            code = compile(program, "<program>", "exec")
        except (SyntaxError, ValueError) as exc:
            _send(sock, _compile_error(exc))
            return

        def start():
            _run_python_main(code)
    else:
        failure = _compile_cpp(program, timeout)
        if failure:
            _send(sock, {"compile_error": failure})
            return

        def start():
            os.execv(f"{WORK_DIR}/program", ["program"])
    _send(sock, {"ready": {}})
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 2)
        except OSError:
            return
        if not data:
            return
        if len(fds) != 2 or len(data) < wire.HEADER:
            return
        msg = wire.unpack(data[wire.HEADER:])
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(fds[0], 0)
                os.dup2(fds[1], 1)
                os.closerange(3, 1 << 16)
                apply_limits(memory_mb, float(msg["cpu"]))
                start()
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)
        _send(sock, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        _send(sock, {"exit": os.waitstatus_to_exitcode(status)})


def _run_python_main(code) -> None:
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "rb", closefd=False)), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "wb", closefd=False)), encoding="utf-8")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "wb", closefd=False), encoding="utf-8",
                                  errors="backslashreplace", write_through=True)
    sys.argv = ["main.py"]
    status = 0
    try:
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as exc:
        status = _exit_status(exc)
    except MemoryError:
        status = MEMORY_EXIT
    except BaseException:  # noqa: BLE001
        _print_traceback()
        status = 1
    try:  # what the interpreter does at exit: wait for threads, run atexit, flush
        import atexit
        import threading
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
        sys.stdout.flush()
    except SystemExit as exc:
        status = _exit_status(exc)
    except BaseException:  # noqa: BLE001
        _print_traceback()
        status = status or 1
    os._exit(status)


def _compile_cpp(program: str, timeout: float) -> dict | None:
    compiler = shutil.which("g++")
    if compiler is None:
        return {"type": "NoCompiler", "message": "this sandbox image has no g++ (rebuild it with C++)"}
    source = f"{WORK_DIR}/program.cpp"
    with open(source, "w", encoding="utf-8") as f:
        f.write(program)

    def limits():
        apply_limits(COMPILE_MEMORY_MB, timeout + 1, untrusted=False)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    try:
        done = subprocess.run([compiler, *CPP_FLAGS, "-o", f"{WORK_DIR}/program", source], cwd=WORK_DIR,
                              capture_output=True, timeout=timeout, preexec_fn=limits)
    except subprocess.TimeoutExpired:
        return {"type": "CompileTimeout", "message": f"g++ ran past {timeout:.1f} s"}
    if done.returncode != 0:
        return {"type": "CompileError", "message": done.stderr.decode("utf-8", "replace")[-4000:]}
    return None
