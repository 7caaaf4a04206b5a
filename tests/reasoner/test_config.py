import dataclasses

import pytest

from reasoner.config import ConfigError, TrainConfig, field_docs, from_dict, load_yaml


def test_every_setting_has_a_docstring():
    docs = field_docs(TrainConfig)
    missing = [f.name for f in dataclasses.fields(TrainConfig) if not docs.get(f.name)]
    assert not missing


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("steps: 7\ngroup-size: 4\nrewards: {task: 1, format: 0.5}\nbeta: 0\n")
    values = load_yaml(path)
    cfg = from_dict(TrainConfig, {**values, "steps": 9})
    assert (cfg.steps, cfg.group_size, cfg.beta) == (9, 4, 0.0)
    assert cfg.rewards == {"task": 1.0, "format": 0.5}


@pytest.mark.parametrize("values, message", [
    ({"stepz": 3}, "unknown setting"),
    ({"steps": "many"}, "expects int"),
    ({"steps": 0}, "steps must be at least 1"),
    ({"group_size": 1}, "group_size must be at least 2"),
    ({"temperature": 0}, "temperature must be > 0"),
    ({"sampler": "magic"}, "unknown sampler"),
    ({"scale_rewards": "perhaps"}, "scale_rewards must be one of group, batch, none"),
    ({"whiten_advantages": "perhaps"}, "expects bool"),
    ({"preset": "magic"}, "unknown preset"),
    ({"dual_clip": 0.5}, "dual_clip must be > 1"),
    ({"overlong": "penalty", "overlong_buffer": 64}, "overlong penalty needs"),
])
def test_bad_values_are_one_line_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, values)


def test_bad_yaml(tmp_path):
    (tmp_path / "a.yaml").write_text("steps: 3\nbeta: 0.04\ngroup_size: [1\n")
    with pytest.raises(ConfigError, match=r"a.yaml:4:1: not valid YAML"):
        load_yaml(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("steps: 3\n  beta: 0.04\n")  # indentation slip on line 2
    with pytest.raises(ConfigError, match=r"c.yaml:2:\d+: not valid YAML: mapping values are not allowed"):
        load_yaml(tmp_path / "c.yaml")
    (tmp_path / "b.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_yaml(tmp_path / "b.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")


def test_unknown_settings_suggest_the_closest_name():
    with pytest.raises(ConfigError, match=r"unknown setting\(s\): group_sise \(did you mean group_size\?\), zzz "):
        from_dict(TrainConfig, {"group_sise": 8, "zzz": 1})


def test_unknown_command_line_option_suggests_the_closest():
    from click.testing import CliRunner

    from reasoner.cli import main

    r = CliRunner().invoke(main, ["train", "--group-sise", "8"])
    assert r.exit_code == 2 and "Did you mean" in r.output and "'--group-size'" in r.output


def test_renamed_settings_still_load_under_their_new_names(tmp_path):
    from reasoner.config import RENAMED

    path = tmp_path / "old.yaml"
    path.write_text("kl_target: 0.02\nkl_horizon: 500\ntarget_kl: 0.3\n")  # a config.yaml written before the rename
    cfg = from_dict(TrainConfig, load_yaml(path))
    assert (cfg.adaptive_kl_target, cfg.adaptive_kl_horizon, cfg.early_stop_kl) == (0.02, 500, 0.3)
    assert set(RENAMED.values()) <= set(TrainConfig.__dataclass_fields__)


def test_help_groups_every_setting_once_and_shows_choices():
    from click.testing import CliRunner

    from reasoner.cli import main
    from reasoner.config import TRAIN_CHOICES, TRAIN_SECTIONS

    listed = [name for names in TRAIN_SECTIONS.values() for name in names]
    assert sorted(listed) == sorted(f.name for f in dataclasses.fields(TrainConfig))  # each field exactly once
    text = CliRunner().invoke(main, ["train", "--help"]).output
    positions = [text.index(f"\n{title}:\n") for title in TRAIN_SECTIONS]
    assert positions == sorted(positions)
    for name, allowed in TRAIN_CHOICES.items():
        assert f"[{'|'.join(allowed)}]" in text, name
    # an option sits under its own heading
    kl = text[text.index("\nKL to the reference:\n"):text.index("\nOptimisation:\n")]
    assert "--beta" in kl and "--kl-estimator" in kl and "--learning-rate" not in kl
    r = CliRunner().invoke(main, ["train", "--lr-schedule", "cosin"])
    assert r.exit_code == 2 and "'cosin' is not one of 'constant', 'linear', 'cosine'" in r.output


def test_dry_run_prints_the_settings_and_what_would_load(tmp_path):
    import subprocess
    import sys

    import yaml

    code = ("import sys\nfrom reasoner.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('torch-imported' if 'vllm' in sys.modules else 'no-vllm')")
    out = tmp_path / "never"
    r = subprocess.run([sys.executable, "-c", code, "train", "--dry-run", "--preset", "dapo", "--steps", "5",
                        "--output", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    settings_text, _, loads = r.stdout.partition("# would load")
    settings = yaml.safe_load(settings_text)
    assert settings["steps"] == 5 and settings["preset"] == "dapo" and settings["dynamic_sampling"] is True
    assert "model: smollm2-135m ->" in loads and "train task: arithmetic (" in loads
    assert f"run directory: {out}" in loads and not out.exists()
    assert r.stdout.strip().endswith("no-vllm")


def test_bad_settings_are_refused_before_torch_is_imported():
    import subprocess
    import sys

    code = ("import sys\nfrom reasoner.cli import main\n"
            "try:\n    main(['train', '--preset', 'magic'])\nexcept SystemExit as e:\n    print('exit', e.code)\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "unknown preset 'magic'" in r.stderr
    assert r.stdout.split() == ["exit", "1", "False"]
