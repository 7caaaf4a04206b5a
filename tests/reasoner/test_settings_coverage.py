"""Every TrainConfig setting is exercised by a test that would fail if the setting were ignored.

COVERAGE maps each field to the tests (node ids) that show its effect; the meta-tests check that
the table names every field and nothing else, and that every test it names exists. A new setting
without a test fails here: add its test, or leave the setting out.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from reasoner.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
CHANGES = "tests/reasoner/test_settings.py::test_a_setting_changes_the_run[{}]"
SETTINGS = "tests/reasoner/test_settings.py::"
TRAIN_CLI = "tests/reasoner/test_train_cli.py::"
ALGORITHMS = "tests/reasoner/test_algorithms.py::"
LIFECYCLE = "tests/reasoner/test_run_lifecycle.py::"
TOOLS = "tests/reasoner/test_tools_cli.py::"

COVERAGE: dict[str, list[str]] = {
    "model": [TRAIN_CLI + "test_train_then_resume", TRAIN_CLI + "test_model_directory_without_config"],
    "task": [TRAIN_CLI + "test_malformed_rows_are_skipped_and_counted",
             "tests/reasoner/test_mixtures.py::test_a_math_and_code_mixture_trains_end_to_end"],
    "eval_task": [SETTINGS + "test_eval_task_is_the_held_out_set"],
    "output": [TRAIN_CLI + "test_train_then_resume"],
    "steps": [TRAIN_CLI + "test_train_then_resume"],
    "prompts_per_step": [TRAIN_CLI + "test_train_then_resume"],
    "group_size": [TRAIN_CLI + "test_train_then_resume"],
    "max_new_tokens": [CHANGES.format("max_new_tokens")],
    "max_prompt_tokens": [SETTINGS + "test_max_prompt_tokens_skips_longer_prompts"],
    "temperature": [CHANGES.format("temperature")],
    "top_p": [CHANGES.format("top_p")],
    "learning_rate": [CHANGES.format("learning_rate")],
    "warmup_steps": [CHANGES.format("warmup_steps")],
    "weight_decay": [CHANGES.format("weight_decay")],
    "algorithm": [CHANGES.format("algorithm"), ALGORITHMS + "test_ppo_trains_and_resumes[separate]"],
    "preset": [ALGORITHMS + "test_presets_layer_under_explicit_settings"],
    "beta": [CHANGES.format("beta")],
    "kl_estimator": [CHANGES.format("kl_estimator")],
    "kl_mode": [CHANGES.format("kl_mode")],
    "adaptive_kl_target": [SETTINGS + "test_adaptive_kl_control_steps_beta_over_its_horizon",
                           ALGORITHMS + "test_grpo_variants_run"],
    "adaptive_kl_horizon": [SETTINGS + "test_adaptive_kl_control_steps_beta_over_its_horizon"],
    "ref_refresh_every": [ALGORITHMS + "test_reference_refresh_copies_the_policy"],
    "clip_low": [CHANGES.format("clip_low")],
    "clip_high": [CHANGES.format("clip_high")],
    "dual_clip": [CHANGES.format("dual_clip")],
    "loss_agg": [CHANGES.format("loss_agg")],
    "num_iterations": [CHANGES.format("num_iterations")],
    "minibatches": [CHANGES.format("minibatches")],
    "early_stop_kl": [ALGORITHMS + "test_early_stop_kl_stops_a_step_early"],
    "scale_rewards": [CHANGES.format("scale_rewards")],
    "dynamic_sampling": [ALGORITHMS + "test_dynamic_sampling_refills_the_batch_with_informative_groups"],
    "dynamic_sampling_rounds": [ALGORITHMS + "test_dynamic_sampling_respects_its_cap"],
    "overlong": [CHANGES.format("overlong"), ALGORITHMS + "test_overlong_mask_leaves_truncated_sequences_out_of_the_loss"],
    "overlong_buffer": [CHANGES.format("overlong_buffer")],
    "entropy_coef": [CHANGES.format("entropy_coef")],
    "critic": [CHANGES.format("critic")],
    "critic_learning_rate": [CHANGES.format("critic_learning_rate")],
    "vf_coef": [CHANGES.format("vf_coef")],
    "value_clip": [CHANGES.format("value_clip")],
    "gamma": [CHANGES.format("gamma")],
    "lam": [CHANGES.format("lam")],
    "whiten_advantages": [CHANGES.format("whiten_advantages")],
    "micro_batch_size": [SETTINGS + "test_micro_batch_size_splits_the_forward_passes"],
    "shared_prefix": ["tests/reasoner/test_shared_prefix.py::test_training_with_a_shared_prefix_ends_with_the_same_weights"],
    "amp": ["tests/reasoner/test_shared_prefix.py::test_amp_bf16_runs_the_learner_under_autocast"],
    "max_grad_norm": [CHANGES.format("max_grad_norm")],
    "rollout_chunks": [SETTINGS + "test_rollout_chunks_split_the_generation"],
    "tools": [TOOLS + "test_train_with_a_tool_plugin_and_its_settings", TOOLS + "test_an_unknown_tool_is_refused_before_anything_loads"],
    "tool_options": [TOOLS + "test_train_with_a_tool_plugin_and_its_settings", TOOLS + "test_a_crashing_tool_plugin_is_tool_output"],
    "max_tool_calls": [TOOLS + "test_train_with_a_tool_plugin_and_its_settings"],
    "tool_output_tokens": [TOOLS + "test_train_with_a_tool_plugin_and_its_settings"],
    "rewards": [TRAIN_CLI + "test_a_crashing_plugin_does_not_stop_training",
                "tests/reasoner/test_rewards_cli.py::test_a_python_function_is_a_reward"],
    "sampler": ["tests/reasoner/test_vllm_sampler.py::test_training_with_the_vllm_sampler",
                "tests/reasoner/test_vllm_server.py::test_training_with_a_server_it_starts_and_one_already_running"],
    "sampler_fallback": ["tests/reasoner/test_vllm_sampler.py::test_fallback_to_transformers_when_asked"],
    "old_logprobs": [CHANGES.format("old_logprobs")],
    "tis_cap": [CHANGES.format("tis_cap")],
    "vllm_server_url": ["tests/reasoner/test_vllm_server.py::test_training_with_a_server_it_starts_and_one_already_running"],
    "vllm_kv_cache_gib": ["tests/reasoner/test_vllm_sampler.py::test_vllm_settings_reach_the_engine"],
    "vllm_gpu_memory_utilization": ["tests/reasoner/test_vllm_sampler.py::test_vllm_settings_reach_the_engine"],
    "vllm_sleep": ["tests/reasoner/test_vllm_sampler.py::test_vllm_settings_reach_the_engine"],
    "system_prompt": [CHANGES.format("system_prompt")],
    "eval_size": [TRAIN_CLI + "test_before_after_evaluation_on_held_out_split"],
    "eval_every": ["tests/reasoner/test_eval_cli.py::test_training_evaluates_every_n_steps"],
    "save_every": [SETTINGS + "test_save_every_and_keep_checkpoints", LIFECYCLE + "test_checkpoints_every_ten_steps_by_default"],
    "save_optimizer": [LIFECYCLE + "test_checkpoints_without_optimizer_state"],
    "max_wall_time": [LIFECYCLE + "test_max_wall_time_stops_cleanly_with_a_checkpoint"],
    "lr_schedule": ["tests/reasoner/test_schedules.py::test_a_run_follows_its_schedule"],
    "gradient_checkpointing": ["tests/reasoner/test_schedules.py::test_the_setting_reaches_the_policy"],
    "lora_rank": ["tests/reasoner/test_lora.py::test_only_the_adapters_train_and_the_reference_is_the_base",
                  "tests/reasoner/test_lora.py::test_lora_resume_equals_an_uninterrupted_run"],
    "lora_alpha": ["tests/reasoner/test_lora.py::test_only_the_adapters_train_and_the_reference_is_the_base"],
    "lora_targets": ["tests/reasoner/test_lora.py::test_only_the_adapters_train_and_the_reference_is_the_base"],
    "lora_dropout": ["tests/reasoner/test_lora.py::test_lora_dropout_acts_in_the_gradient_passes_only"],
    "report_to": ["tests/reasoner/test_report.py::test_training_reports_to_tensorboard_and_wandb"],
    "verifier_options": ["tests/reasoner/test_rewards_cli.py::test_verifier_options_on_the_command_line"],
    "keep_checkpoints": [SETTINGS + "test_save_every_and_keep_checkpoints"],
    "seed": [CHANGES.format("seed")],
    "seed_per_prompt": [ALGORITHMS + "test_pipelined_rollout_chunks_judge_the_same_samples",
                        "tests/reasoner/test_distributed.py::test_two_processes_match_one"],
    "dtype": [SETTINGS + "test_dtype_is_the_parameters_dtype"],
    "device": [SETTINGS + "test_device_is_used"],
    "threads": [SETTINGS + "test_threads_sets_torch_threads"],
}


def test_the_table_covers_every_setting():
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert [f for f in fields if f not in COVERAGE] == [], "settings without a test"
    assert [f for f in COVERAGE if f not in fields] == [], "the table names settings that do not exist"
    assert all(COVERAGE[f] for f in fields)


def _parametrize_ids(func: ast.FunctionDef, module_globals: dict) -> set[str] | None:
    """The ids of a test's ``@pytest.mark.parametrize`` (None when it has none), from literal values or
    a ``list(NAME)`` of a module-level dict."""
    for deco in func.decorator_list:
        if isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "parametrize":
            values = deco.args[1]
            if isinstance(values, ast.Call) and getattr(values.func, "id", "") == "list":
                return {str(v) for v in module_globals[values.args[0].id]}
            return {str(v) for v in ast.literal_eval(values)}
    return None


@pytest.mark.parametrize("node", sorted({n for nodes in COVERAGE.values() for n in nodes}))
def test_every_listed_test_exists(node):
    path, _, name = node.partition("::")
    name, _, param = name.partition("[")
    tree = ast.parse((ROOT / path).read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert name in funcs, f"{node}: no test {name} in {path}"
    if param:
        module_globals = {}
        for n in tree.body:  # module-level dict literals (CASES), evaluated without importing the module
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict) and len(n.targets) == 1:
                module_globals[n.targets[0].id] = {ast.literal_eval(k): None for k in n.value.keys}
        ids = _parametrize_ids(funcs[name], module_globals)
        assert ids is not None and param.rstrip("]") in ids, f"{node}: no parameter {param.rstrip(']')!r}"
