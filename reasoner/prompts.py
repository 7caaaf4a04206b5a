"""Prompts to token ids: the chat template when the tokenizer has one, plain text otherwise."""

from __future__ import annotations

from typing import Sequence


def to_messages(prompt: str | list[dict[str, str]], system_prompt: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system_prompt and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def render(tokenizer, prompt: str | list[dict[str, str]], system_prompt: str | None = None) -> str:
    """The exact text the model sees before its reply."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(to_messages(prompt, system_prompt), tokenize=False,
                                             add_generation_prompt=True)
    if not isinstance(prompt, str):
        prompt = "\n".join(m["content"] for m in prompt)
    return f"{system_prompt}\n\n{prompt}" if system_prompt else prompt


def encode_prompts(tokenizer, prompts: Sequence, system_prompt: str | None = None) -> list[list[int]]:
    texts = [render(tokenizer, p, system_prompt) for p in prompts]
    templated = bool(getattr(tokenizer, "chat_template", None))  # the template adds its own special tokens
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=not templated)["input_ids"]]
