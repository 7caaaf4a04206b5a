"""LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685) with the ``peft`` library.

With ``lora_rank > 0`` the policy is the base model with low-rank adapters ``W + (alpha / r) B A``
on the ``lora_targets`` modules; only A and B are trained and held by the optimizer.

- The reference is the same module with the adapters switched off (`AdaptersOff`): no second
  copy of the weights.
- The sampler gets the merged weights under the base model's parameter names
  (`merged_weights`): ``base_model.model.X.base_layer.weight`` -> ``X.weight`` holding
  ``W + scale * B @ A``; the adapter tensors themselves are not sent. A sampler that shares the
  policy module (``--sampler hf``) samples through the live adapters and needs nothing.
- Checkpoints hold the adapter (``adapter_model.safetensors`` + ``adapter_config.json``) and name
  the base model; `merge_checkpoint` writes a plain Hugging Face model for serving.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import torch

ADAPTER_CONFIG = "adapter_config.json"
BASE_FILE = "base_model.json"  # the base model's identity, beside the adapter


def is_lora(model) -> bool:
    return hasattr(model, "peft_config")


def is_adapter_dir(path) -> bool:
    p = Path(path)
    return (p / ADAPTER_CONFIG).is_file() and not (p / "config.json").is_file()


def wrap(model, rank: int, alpha: float, targets: str, dropout: float = 0.0):
    """The peft model of ``model`` with fresh adapters (B = 0: it starts equal to the base)."""
    from peft import LoraConfig, get_peft_model

    modules = "all-linear" if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=modules, bias="none",
                        task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        from reasoner.config import ConfigError

        raise ConfigError(f"--lora-targets {targets!r}: {str(exc).splitlines()[0]}") from None


def load(model, adapter_dir, trainable: bool = True):
    """``model`` with the adapter saved in ``adapter_dir``."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def base_of(adapter_dir) -> str:
    """The base model an adapter checkpoint was trained on."""
    p = Path(adapter_dir)
    if (p / BASE_FILE).is_file():
        return json.loads((p / BASE_FILE).read_text())["base_model"]
    return json.loads((p / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]


def save_base_identity(path, base: str) -> None:
    Path(path, BASE_FILE).write_text(json.dumps({"base_model": base}) + "\n")


def _base_name(name: str) -> str:
    name = name.removeprefix("base_model.model.")
    return name.replace(".base_layer.", ".")


@torch.no_grad()
def merged_weights(model) -> Iterator[tuple[str, torch.Tensor]]:
    """The weights a plain base model needs to compute what ``model`` (base + active adapters) does,
    named as the base model names them. Non-LoRA models: their own parameters."""
    if not is_lora(model):
        yield from model.named_parameters()
        return
    from peft.tuners.lora import LoraLayer

    adapter = model.active_adapter
    layers = {name.removeprefix("base_model.model.") + ".base_layer.weight": m
              for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    for name, tensor in model.named_parameters():
        if ".lora_" in name:
            continue
        short = name.removeprefix("base_model.model.")
        layer = layers.get(short)
        if layer is not None and adapter in layer.lora_A and not layer.merged:
            tensor = tensor + layer.get_delta_weight(adapter).to(tensor.dtype)
        yield _base_name(name), tensor


@contextlib.contextmanager
def adapter_dropout(model, on: bool):
    """LoRA dropout active inside the block (the learner's gradient passes). The policy is otherwise
    in eval mode, so the passes that score samples (old log-probs, the reference, the sampler
    agreement metric) see no dropout and match the sampler."""
    drops = [m for name, m in model.named_modules()
             if on and ".lora_dropout." in name and isinstance(m, torch.nn.Dropout)]
    for m in drops:
        m.train()
    try:
        yield
    finally:
        for m in drops:
            m.eval()


class AdaptersOff(torch.nn.Module):
    """The base model: ``policy`` called with its adapters disabled (the KL reference under LoRA).
    Holds no weights of its own; ``policy`` is not registered as a submodule (not saved, not trained)."""

    def __init__(self, policy):
        super().__init__()
        self._policy = [policy]

    def forward(self, *args, **kwargs):
        policy = self._policy[0]
        with torch.no_grad(), policy.disable_adapter():
            return policy(*args, **kwargs)


def merge_checkpoint(checkpoint_dir, out, dtype: str = "float32") -> Path:
    """Write base + adapter of ``checkpoint_dir`` as one Hugging Face model (and tokenizer) in ``out``."""
    from reasoner import models

    base = models.resolve(base_of(checkpoint_dir))
    model = load(models.load_model(base, dtype), checkpoint_dir, trainable=False).merge_and_unload()
    out = Path(out)
    model.save_pretrained(out)
    src = checkpoint_dir if (Path(checkpoint_dir) / "tokenizer_config.json").is_file() else base
    models.load_tokenizer(str(src)).save_pretrained(out)
    return out
