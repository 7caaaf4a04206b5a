"""The half of the vLLM server mode that runs inside ``vllm serve``'s worker process.

``vllm serve --worker-extension-cls reasoner.vllm_worker.SharedWeightsReceiver`` mixes this class
into vLLM's worker; the trainer then calls its method through the server's ``/collective_rpc``
endpoint (``VLLM_SERVER_DEV_MODE=1``). The weights themselves never travel over HTTP: the trainer
copies them into one shared-memory file (``/dev/shm``) and sends only its path and layout; the
worker maps that file and loads the tensors in place, as the in-process sampler does.

Kept free of reasoner's other modules: it is imported by the server, not by the trainer.
"""

from __future__ import annotations

import json

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def views(path: str, layout: list[dict]) -> list[tuple[str, torch.Tensor]]:
    """The named tensors laid out in the shared-memory file (views, no copy)."""
    size = max((t["offset"] + t["nbytes"] for t in layout), default=0)
    buffer = torch.from_file(path, shared=True, size=size, dtype=torch.uint8)
    return [(t["name"], buffer[t["offset"]:t["offset"] + t["nbytes"]].view(DTYPES[t["dtype"]]).view(t["shape"]))
            for t in layout]


class SharedWeightsReceiver:
    """Worker methods the trainer calls by name through ``/collective_rpc``."""

    def reasoner_ping(self) -> dict:
        return {"ok": True}

    def reasoner_load_shared_weights(self, spec: str) -> dict:
        """Load the weights described by ``spec`` (JSON: ``path`` and ``layout``) in place."""
        spec = json.loads(spec)
        weights = views(spec["path"], spec["layout"])
        self.reload_weights(weights_iterator=iter(weights))
        model = self.model_runner.get_model()
        if next(model.parameters()).device.type == "cpu":
            repack_cpu_gemms(model)
        return {"loaded": len(weights)}


def repack_cpu_gemms(model) -> None:
    """Rebuild vLLM's packed CPU GEMM handles of layers that keep their weight tensor.

    On CPU, vLLM packs each linear layer's weight into a oneDNN handle at load time. The
    in-place reload re-packs every layer it loads, but a tied ``lm_head`` loads nothing (its
    weight is the embedding's) and would keep multiplying by the old embedding.
    """
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    for module in model.modules():
        weight = getattr(module, "weight", None)
        if hasattr(module, "cpu_linear") and isinstance(weight, torch.Tensor) and weight.numel() > 0:
            dispatch_cpu_unquantized_gemm(module, remove_weight=False)
