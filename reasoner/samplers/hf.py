"""Sampling with transformers ``generate`` (``--sampler hf``): no extra dependency, slower than vLLM."""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from reasoner.samplers.base import Completion, SamplingParams


def stop_token_ids(model, tokenizer) -> list[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


class HFSampler:
    """Sampling with transformers ``generate`` on the policy module itself (no copy, no sync cost)."""

    name = "hf"

    def __init__(self, model, tokenizer, max_batch: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], n: int, params: SamplingParams) -> list[list[Completion]]:
        if params.seed is not None:
            torch.manual_seed(params.seed)
        was_training = self.model.training
        self.model.eval()
        try:
            if params.prompt_seeds is not None:  # one generate call per group, each from its own seed
                groups = []
                for prompt, seed in zip(prompts, params.prompt_seeds, strict=True):
                    torch.manual_seed(seed)
                    groups.append(self._generate_batch([list(prompt)] * n, params))
                return groups
            flat = [list(p) for p in prompts for _ in range(n)]
            out: list[Completion] = []
            for start in range(0, len(flat), self.max_batch):
                out.extend(self._generate_batch(flat[start:start + self.max_batch], params))
        finally:
            self.model.train(was_training)
        return [out[i * n:(i + 1) * n] for i in range(len(prompts))]

    def _generate_batch(self, prompts: list[list[int]], params: SamplingParams) -> list[Completion]:
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, width - len(p):] = torch.tensor(p)
            attention[i, width - len(p):] = 1
        greedy = params.temperature <= 0
        kwargs = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=params.temperature,
                                                           top_p=params.top_p, top_k=0)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        result = self.model.generate(
            input_ids=input_ids.to(device), attention_mask=attention.to(device),
            max_new_tokens=params.max_new_tokens, eos_token_id=self.stop_ids, pad_token_id=self.pad_id,
            output_scores=True, return_dict_in_generate=True, **kwargs)
        new = result.sequences[:, width:].cpu()
        # scores[t] are the processed logits (temperature and top-p applied) the token was drawn from
        logprobs = torch.empty(new.shape, dtype=torch.float32)
        for t, step_scores in enumerate(result.scores):  # (b, vocab) each; never stack all (b*t*vocab floats)
            step_logp = torch.log_softmax(step_scores.float(), dim=-1).cpu()
            logprobs[:, t] = step_logp.gather(-1, new[:, t:t + 1]).squeeze(-1)
        completions = []
        for i in range(len(prompts)):
            ids = new[i].tolist()
            end = next((t for t, tok in enumerate(ids) if tok in self.stop_ids), None)
            finish = "length" if end is None else "stop"
            at = self._stop_string_end(ids[:len(ids) if end is None else end], params.stop)
            if at is not None:  # generate stopped this row on a stop string (padding follows it)
                end, finish = at - 1, "stop_string"
            keep = len(ids) if end is None else end + 1
            ids = ids[:keep]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            completions.append(Completion(ids, logprobs[i, :keep].tolist(), text, finish))
        return completions

    def _stop_string_end(self, ids: list[int], stop: tuple[str, ...]) -> int | None:
        """The number of tokens up to the one that completes a stop string, or None."""
        if not stop or not any(s in self.tokenizer.decode(ids, skip_special_tokens=True) for s in stop):
            return None
        for k in range(1, len(ids) + 1):
            text = self.tokenizer.decode(ids[:k], skip_special_tokens=True)
            if any(s in text for s in stop):
                return k
        return None

    def close(self) -> None:
        pass

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy tensors that are not already this sampler's own (the shared-policy case costs nothing)."""
        if hasattr(self.model, "peft_config"):
            return  # the LoRA policy itself: it samples through its live adapters
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, tensor in named_tensors:
                target = params[name]
                if target.data_ptr() != tensor.data_ptr():
                    target.copy_(tensor)
