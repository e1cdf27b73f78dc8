"""Search spaces from config and best.yaml presets: Ray-free, milliseconds."""

import shutil

import pytest

from sonic_ray.config import ConfigError, config_dir, load_config
from sonic_ray.config.compose import compose, to_yaml
from sonic_ray.tune.results import TrialRow, best_row, preset_yaml, read_results_csv, write_results_csv
from sonic_ray.tune.space import (
    LEVELS_KEY,
    check_space,
    grid_points,
    num_trials,
    parse_search_space,
    trial_config,
)


def test_smoke_preset_sweeps_two_fsq_shapes_and_an_encoder_probability():
    cfg = load_config(["+exp=tune_smoke"])
    specs = parse_search_space(cfg.tune.search_space, cfg)
    assert [(s.key, s.kind) for s in specs] == [
        (LEVELS_KEY, "grid"),
        ("env.commands.motion.encoder_sample_probs.smpl", "choice"),
    ]
    assert grid_points(specs) == [{LEVELS_KEY: [8, 8]}, {LEVELS_KEY: [5, 5, 5]}]
    assert num_trials(specs, cfg.tune.num_samples) == 2


def test_fsq_spec_is_the_grid_of_levels_per_dim_times_num_dims():
    cfg = load_config(["tune=fsq_encoders"])
    specs = parse_search_space(cfg.tune.search_space, cfg)
    assert specs[0].values == ([5] * 4, [5] * 8, [8] * 4, [8] * 8)
    assert num_trials(specs, 1) == 8


def test_nested_command_line_keys_become_dotted_keys():
    cfg = load_config(["+exp=demo", "+tune.search_space.algo.actor_lr={loguniform:[1e-5,1e-3]}"])
    (spec,) = parse_search_space(cfg.tune.search_space, cfg)
    assert (spec.key, spec.kind, spec.bounds) == ("algo.actor_lr", "loguniform", (1e-5, 1e-3))


@pytest.mark.parametrize(
    "override, key",
    [
        ("+tune.search_space.algo.bogus={grid:[1]}", "tune.search_space.algo.bogus"),
        ("+tune.search_space.algo.actor_lr={loguniform:[0,1]}", "tune.search_space.algo.actor_lr.loguniform"),
        ("+tune.search_space.algo.actor_lr={grid:[]}", "tune.search_space.algo.actor_lr.grid"),
        ("+tune.search_space.algo.actor_lr=3", "tune.search_space.algo.actor_lr"),
        (
            "+tune.search_space.env.num_envs={fsq:{levels_per_dim:[4],num_dims:[2]}}",
            "tune.search_space.env.num_envs.fsq",
        ),
        ("+tune.search_space.run_dir={grid:[a,b]}", "tune.search_space.run_dir"),
        ("tune.mode=up", "tune.mode"),
        ("tune.scheduler=hyperband", "tune.scheduler"),
    ],
)
def test_bad_sweeps_name_their_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(["+exp=demo", override])
    assert key in str(err.value)


def test_a_grid_value_the_schema_rejects_fails_before_any_trial():
    base = compose(["+exp=demo", "+tune.search_space.actor_critic.quantizer.levels={grid:[[8,8],[8,1]]}"])
    cfg = load_config(["+exp=demo", "+tune.search_space.actor_critic.quantizer.levels={grid:[[8,8],[8,1]]}"])
    with pytest.raises(ConfigError, match=r"actor_critic.quantizer.levels\[1\]"):
        check_space(base, parse_search_space(cfg.tune.search_space, cfg))


def test_trial_config_replaces_dotted_keys_and_validates():
    base = compose(["+exp=tune_smoke"])
    cfg = trial_config(base, {LEVELS_KEY: [5, 5, 5], "env.commands.motion.encoder_sample_probs.smpl": 0.5})
    assert cfg.actor_critic.quantizer.levels == [5, 5, 5]
    assert cfg.env.commands.motion.encoder_sample_probs == {"g1": 1.0, "teleop": 1.0, "smpl": 0.5}
    with pytest.raises(ConfigError, match="env.num_envs"):
        trial_config(base, {"env.num_envs": 0})


def _compose_preset(tmp_path, monkeypatch, name, text):
    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    (configs / "exp" / f"{name}.yaml").write_text(text)
    monkeypatch.setenv("SONIC_RAY_CONFIG_DIR", str(configs))
    return load_config([f"+exp={name}"])


@pytest.mark.slow  # two Hydra compositions and a copy of configs/: ~1.5 s
@pytest.mark.parametrize(
    "overrides",
    [
        ["+exp=tune_smoke", "run_dir=/tmp/x"],
        [
            "+exp=demo",
            "env.num_envs=12",
            "++algo.actor_lr=3e-4",
            "+env.rewards.extra_term={weight: 0.5}",
            "actor_critic/quantizers@actor_critic.quantizer=fsq",
            "tune=fsq_encoders",
        ],
    ],
)
def test_best_yaml_composes_to_the_trial_config(tmp_path, monkeypatch, overrides):
    params = {LEVELS_KEY: [5, 5, 5], "env.commands.motion.encoder_sample_probs.smpl": 0.5}
    trial = trial_config(compose(overrides), params)
    text = preset_yaml(
        overrides=overrides,
        trial_cfg=trial,
        params=params,
        experiment="swept_best",
        header="Best trial t1\nof a test sweep",
    )
    assert text.startswith("# @package _global_\n# Best trial t1\n")
    composed = _compose_preset(tmp_path, monkeypatch, "swept_best", text)
    assert composed.experiment == "swept_best"
    composed.experiment, composed.run_dir = trial.experiment, trial.run_dir
    assert to_yaml(composed) == to_yaml(trial)


def test_best_yaml_refuses_deletions():
    trial = load_config(["+exp=demo"])
    with pytest.raises(ConfigError, match="~env.rewards"):
        preset_yaml(
            overrides=["+exp=demo", "~env.rewards.joint_acc_l2"], trial_cfg=trial, params={}, experiment="x"
        )


def test_results_table_and_best_row(tmp_path):
    rows = [
        TrialRow(
            "a_00000",
            "completed",
            {LEVELS_KEY: [8, 8]},
            3,
            {"reward/total": 0.2, "model/codebook_size": 64.0},
            "r/a",
        ),
        TrialRow("a_00001", "stopped early", {LEVELS_KEY: [5, 5, 5]}, 2, {"reward/total": 0.3}, "r/b"),
        TrialRow("a_00002", "error", {LEVELS_KEY: [4]}, 0, {"reward/total": 0.9}, "r/c", error="boom"),
    ]
    # Errors never win; a trial stopped early (2 iterations) does not beat one that ran 3.
    assert best_row(rows, "reward/total", "max").trial_id == "a_00000"
    assert best_row(rows[1:], "reward/total", "max").trial_id == "a_00001"
    better = TrialRow("a_00003", "completed", {LEVELS_KEY: [3, 3]}, 3, {"reward/total": 0.25}, "r/d")
    assert best_row([*rows, better], "reward/total", "max").trial_id == "a_00003"
    assert best_row([*rows, better], "reward/total", "min").trial_id == "a_00000"
    assert best_row(rows, "eval/success_rate", "max") is None
    write_results_csv(tmp_path / "results.csv", rows, [LEVELS_KEY], "reward/total")
    table = read_results_csv(tmp_path / "results.csv")
    assert [r["trial_id"] for r in table] == ["a_00000", "a_00001", "a_00002"]
    assert table[0][LEVELS_KEY] == "[8, 8]" and table[0]["model/codebook_size"] == "64.0"
    assert table[2]["status"] == "error" and table[2]["error"] == "boom"
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temp file, renamed into place
