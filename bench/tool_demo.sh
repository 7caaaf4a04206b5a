#!/usr/bin/env bash
# GRPO on SmolLM2-135M-Instruct, multi-digit multiplication, with and without the python tool:
# the same task, steps, batch and token budget; only --tools and the system prompt differ.
# Usage: bench/tool_demo.sh OUT_DIR [STEPS] [ARMS]   (ARMS: "tool no-tool", the default, or one of them)
#   then: .venv/bin/python bench/tool_demo_report.py OUT_DIR
set -euo pipefail
out=${1:?output directory}
steps=${2:-12}
arms=${3:-tool no-tool}
task="arithmetic:ops=*,min_value=10,max_value=99,style=number"
tool_prompt='You can run Python. To calculate, write a Python code block; you will see its output. Then give the answer.
Example:
What is 12 × 34?
```python
print(12 * 34)
```
```output
408
```
The answer is 408.'
common=(--model smollm2-135m --task "$task" --steps "$steps" --prompts-per-step 8 --group-size 8
        --max-new-tokens 64 --temperature 1.0 --beta 0 --learning-rate 3e-5 --eval-size 60 --sampler vllm
        --save-every 0 --keep-checkpoints 1 --quiet)
if [[ " $arms " == *" tool "* ]]; then
.venv/bin/reasoner train "${common[@]}" --tools python --max-tool-calls 2 --tool-output-tokens 64 \
    --system-prompt "$tool_prompt" --output "$out/tool"
fi
if [[ " $arms " == *" no-tool "* ]]; then
.venv/bin/reasoner train "${common[@]}" --output "$out/no-tool"
fi
