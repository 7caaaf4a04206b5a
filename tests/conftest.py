"""Shared fixtures: a tiny random Llama with a character-level tokenizer, built offline; the Docker gate.

Tests marked ``docker`` are skipped when the daemon or the sandbox image is not there, and
*fail* instead when ``REASONER_REQUIRE_DOCKER=1`` (CI sets it, after ``.ci/docker.sh``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

# The tests' models are tiny: one thread runs their kernels ~30x faster than two threads that
# synchronise at every operator (measured on the 2-core CI machine kind, docs/benchmarks.md).
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CHARS = list("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ +-*/=?.,:<>|_#{}\\$()'\n")
CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


def build_tiny_model(path: Path, seed: int = 0, layers: int = 2, hidden: int = 64, heads: int = 2,
                     kv_heads: int = 1) -> Path:
    """A randomly initialised 2-layer Llama (~0.1M parameters) and a char-level tokenizer.

    Head size 32: the smallest vLLM's CPU attention kernels accept."""
    import torch
    from tokenizers import Tokenizer, decoders, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + CHARS)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=512, pad_token_id=0, eos_token_id=1, bos_token_id=None,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = 1
    model.generation_config.pad_token_id = 0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def unloadable(tmp_path_factory) -> Path:
    """A model vLLM cannot load: head size 16 runs in transformers, not in vLLM's CPU attention kernels."""
    return build_tiny_model(tmp_path_factory.mktemp("head16"), heads=4, kv_heads=2)


def write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w") as f:
        for row in rows:
            f.write(row if isinstance(row, str) else json.dumps(row))
            f.write("\n")
    return path


@pytest.fixture
def digit_task(tmp_path) -> str:
    """A trivially learnable task for a random model: reward 1 when the reply starts with a digit."""
    rows = [{"id": f"q{i}", "prompt": f"say a number {i}", "reference": "any digit", "verifier": "format",
             "format": "regex", "format_pattern": r"[0-9].*"} for i in range(64)]
    return "jsonl:" + str(write_jsonl(tmp_path / "digits.jsonl", rows))


@functools.lru_cache(maxsize=None)
def docker_problem() -> str | None:
    """Why the sandbox cannot run here (with the fix), or None when it can."""
    from reasoner.sandbox import SandboxUnavailable, engine, image
    try:
        api = engine.connect(timeout=10)
        try:
            info = image.describe(api)
        finally:
            api.close()
    except SandboxUnavailable as exc:
        return str(exc)
    if not info["current"]:
        return f"{info['tag']} is from an older recipe: rebuild it with `reasoner sandbox build`"
    return None


def require_docker() -> None:
    problem = docker_problem()
    if problem:
        if os.environ.get("REASONER_REQUIRE_DOCKER") == "1":
            pytest.fail(f"REASONER_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="session")
def pool():
    """Two warm sandbox containers for ordinary jobs, shared by the sandbox and code-verifier tests."""
    require_docker()
    from reasoner.sandbox import Limits
    from reasoner.sandbox.pool import Sandbox
    with Sandbox(workers=2, limits=Limits(timeout=5.0)) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _docker_gate(request):
    if request.node.get_closest_marker("docker"):
        require_docker()


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level(logging.WARNING)
    yield


PLUGIN = textwrap.dedent('''
    from reasoner.verifiers import Verdict, Verifier

    class Boom(Verifier):
        """A plugin that always crashes."""
        name = "boom"
        def verify(self, completion, example):
            raise ValueError("plugin bug")

    class Likes7(Verifier):
        """Reward 1 for replies containing a 7."""
        name = "likes7"
        def verify(self, completion, example):
            return Verdict(float("7" in completion), "7" in completion, "seven" if "7" in completion else "no_seven")
''')


def install_distribution(root: Path, module: str, source: str, dist: str, version: str, entry_points: str) -> None:
    """A package installed the way pip installs one: ``module``.py and its dist-info under ``root``."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A third-party plugin package installed the way pip installs one: a module and a dist-info."""
    install_distribution(tmp_path, "reasoner_test_plugin", PLUGIN, "reasoner-test-plugin", "0.1",
                         "[reasoner.verifiers]\nboom = reasoner_test_plugin:Boom\nlikes7 = reasoner_test_plugin:Likes7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("reasoner_test_plugin", None)
