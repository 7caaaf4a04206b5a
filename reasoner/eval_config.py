"""Settings of ``reasoner eval``: one dataclass, a docstring per field (they become ``--help``).

Kept apart from ``reasoner.evaluate`` so that ``reasoner eval --help`` imports no torch.
"""

from __future__ import annotations

import dataclasses

from reasoner.config import SAMPLERS, ConfigError, check_tools


@dataclasses.dataclass
class EvalConfig:
    """Settings of ``reasoner eval``."""

    model: str = "smollm2-135m"
    """Model to evaluate: a Hugging Face directory (e.g. a run's checkpoints/step-N), a .gguf file, a Hub id or an alias."""
    tasks: tuple[str, ...] = ()
    """Benchmarks as task specs: gsm8k, math500, aime24, amc23, humaneval, jsonl:PATH, or NAME:PATH."""
    samples: int = 1
    """Completions per problem (n); pass@k and maj@k are reported for k up to n."""
    temperature: float = 0.0
    """Sampling temperature; 0 is greedy decoding (then --samples must be 1)."""
    top_p: float = 1.0
    """Nucleus sampling threshold (1.0 samples from the full distribution)."""
    max_new_tokens: int = 1024
    """Maximum new tokens per completion; a completion cut here is scored as it stands."""
    k: str | None = None
    """k values of the table, comma-separated, e.g. 1,8,64 (default 1, 2, 4, ..., --samples); summary.json has every k."""
    limit: int = 0
    """Evaluate only the first N problems of each task (0: all)."""
    output: str | None = None
    """Directory for summary.json and one <task>.jsonl per task (per problem: prompt, completions, answers, verdicts)."""
    prompt_template: str | None = None
    """Replace every task's prompt with this text, {question} standing for the problem: '{question} Answer with a number.'"""
    system_prompt: str | None = None
    """System message for chat models; empty keeps the chat template's own default."""
    data_dir: str | None = None
    """Directory holding the benchmarks' JSONL files (same as $REASONER_DATA; default ./data, then Hugging Face)."""
    sampler: str = "auto"
    """Generation engine: vllm (in this process), vllm-server (a separate vLLM server on this machine), hf (transformers generate), or auto (vllm when installed, else hf)."""
    batch_size: int = 64
    """Problems sent to the sampler at once (each with all its samples); also the progress bar's step."""
    seed: int = 0
    """Sampling seed: same seed, same completions (on the same machine and engine)."""
    dtype: str = "float32"
    """Weights dtype: float32 (CPU default), bfloat16 or float16 (GPU)."""
    tools: str | None = None
    """Tools the model may call while it writes, comma-separated: python (a fenced python code block, run in the Docker sandbox)."""
    tool_options: dict[str, dict] = dataclasses.field(default_factory=dict)
    """Options of the tools as NAME.KEY=VALUE, e.g. python.timeout=5."""
    max_tool_calls: int = 4
    """Tool calls per completion at most; later calls are not run."""
    tool_output_tokens: int = 256
    """Tokens of a tool's output kept in the completion (the rest is cut, with a note saying so)."""
    vllm_kv_cache_gib: int = 4
    """vLLM on CPU: GiB of memory for the KV cache."""
    vllm_gpu_memory_utilization: float = 0.85
    """vLLM on GPU: fraction of GPU memory the engine may take."""

    def validate(self) -> None:
        for name in ("samples", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.limit < 0:
            raise ConfigError(f"limit must be >= 0 (got {self.limit})")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (got {self.temperature})")
        if self.temperature == 0 and self.samples > 1:
            raise ConfigError(f"--samples {self.samples} with greedy decoding gives {self.samples} identical "
                              "completions: pass --temperature > 0 (e.g. 0.6) to sample")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r} (known: {', '.join(SAMPLERS)})")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be float32, bfloat16 or float16 (got {self.dtype!r})")
        if self.prompt_template is not None and "{question}" not in self.prompt_template:
            raise ConfigError("prompt_template must contain {question}, where each problem goes")
        check_tools(self.tools, self.max_tool_calls, self.tool_output_tokens)
        self.ks()

    def ks(self) -> list[int]:
        """The k values of the table: --k, or 1, 2, 4, ... and --samples itself."""
        if not self.k:
            out = [2 ** i for i in range(self.samples.bit_length()) if 2 ** i <= self.samples]
            return sorted(set(out) | {self.samples})
        try:
            values = sorted({int(v) for v in str(self.k).split(",") if v.strip()})
        except ValueError:
            raise ConfigError(f"k must be comma-separated integers, e.g. 1,4,16 (got {self.k!r})") from None
        if not values or values[0] < 1:
            raise ConfigError(f"k values must be >= 1 (got {self.k!r})")
        if values[-1] > self.samples:
            raise ConfigError(f"k={values[-1]} is more than --samples {self.samples}: pass@k and maj@k need at least "
                              f"k samples per problem; raise --samples to {values[-1]} or lower k")
        return values
