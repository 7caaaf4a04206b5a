"""Samplers: the engines that generate completions for training and evaluation.

| module | ``--sampler`` | what |
|---|---|---|
| ``base.py`` | | the ``Sampler`` protocol, ``SamplingParams``, ``Completion``, ``SamplerError`` |
| ``hf.py`` | ``hf`` | transformers ``generate`` on the policy module itself |
| ``vllm.py`` | ``vllm`` | a vLLM engine in this process, weights synced by reference |
| ``vllm_server.py`` | ``vllm-server`` | a separate vLLM server process, weights pushed through shared memory |

``make_sampler`` is the one factory: ``reasoner train`` and ``reasoner eval`` both build theirs with it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from reasoner.samplers.base import Completion, Sampler, SamplerError, SamplingParams

log = logging.getLogger(__name__)

__all__ = ["Completion", "Sampler", "SamplerError", "SamplingParams", "make_sampler", "vllm_available"]


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def make_sampler(name: str, model_dir: str, tokenizer, *, policy=None, dtype: str = "float32", seed: int = 0,
                 max_model_len: int = 2048, gpu_memory_utilization: float = 0.5, kv_cache_gib: int = 2,
                 sleep_between_steps: bool = False, server_url: str | None = None, log_path: Path | None = None,
                 fallback: bool = False) -> Sampler:
    """The sampler called ``name`` (auto, hf, vllm, vllm-server) for the model in ``model_dir``.

    ``policy``: the module being trained. The transformers sampler generates with it (without it, it
    loads ``model_dir``), and a vLLM server already running at ``server_url`` is given its weights.
    ``fallback``: when a vLLM engine cannot start, warn and return the transformers sampler instead."""
    if name == "auto":
        name = "vllm" if vllm_available() else "hf"
    if name == "hf":
        return _hf(model_dir, tokenizer, policy, dtype)
    try:
        if name == "vllm-server":
            from reasoner.samplers.vllm_server import VLLMServerSampler

            if log_path is not None:
                log_path.parent.mkdir(parents=True, exist_ok=True)
            sampler = VLLMServerSampler(model_dir, tokenizer, url=server_url, dtype=dtype, seed=seed,
                                        max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                                        kv_cache_gib=kv_cache_gib, log_path=log_path)
            if server_url and policy is not None:  # a server already running may hold other weights
                sampler.load_weights(policy.named_parameters())
            return sampler
        if name == "vllm":
            from reasoner.samplers.vllm import VLLMSampler

            return VLLMSampler(model_dir, tokenizer, dtype=dtype, seed=seed, max_model_len=max_model_len,
                               gpu_memory_utilization=gpu_memory_utilization, kv_cache_gib=kv_cache_gib,
                               sleep_between_steps=sleep_between_steps)
    except SamplerError as exc:
        if not fallback:
            raise
        log.warning("%s; falling back to the transformers sampler", exc.message)
        return _hf(model_dir, tokenizer, policy, dtype)
    raise SamplerError(f"unknown sampler {name!r} (known: auto, hf, vllm, vllm-server)")


def _hf(model_dir: str, tokenizer, policy, dtype: str):
    from reasoner.samplers.hf import HFSampler

    if policy is None:
        import torch

        from reasoner import models

        policy = models.load_model(model_dir, dtype, "cuda" if torch.cuda.is_available() else "cpu").eval()
    return HFSampler(policy, tokenizer)
