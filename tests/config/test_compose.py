"""Config integrity: every preset composes and validates; bad input fails naming its key."""

import pytest

from sonic_ray.cli import main
from sonic_ray.config import ConfigError, config_dir, load_config, to_yaml

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "exp").glob("*.yaml"))


def test_presets_exist():
    assert {"sonic_release", "demo", "smoke"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_every_experiment_preset_composes_and_validates(exp):
    cfg = load_config([f"+exp={exp}"])
    assert cfg.experiment == exp
    assert set(cfg.env.commands.motion.encoder_sample_probs) <= set(cfg.actor_critic.encoders)
    assert "experiment: " + exp in to_yaml(cfg)


def test_release_preset_carries_sonic_figures():
    cfg = load_config(["+exp=sonic_release"])
    assert cfg.env.num_envs == 4096
    assert cfg.algo.num_steps_per_env == 24
    assert cfg.actor_critic.quantizer.levels == [32] * 32
    assert cfg.actor_critic.quantizer.num_tokens == 2
    assert cfg.algo.actor_lr == pytest.approx(2e-5)
    assert cfg.algo.critic_lr == pytest.approx(1e-3)
    assert cfg.actor_critic.decoders.g1_dyn.hidden == [2048, 2048, 1024, 1024, 512, 512]
    assert cfg.env.rewards["vr_5point_local_error_exp"].weight == pytest.approx(2.0)


def test_demo_preset_is_cpu_sized():
    cfg = load_config(["+exp=demo"])
    assert cfg.device == "cpu" and cfg.sim.backend == "mujoco"
    assert cfg.actor_critic.encoders["g1"].hidden == [256, 128]
    # SONIC's release FSQ, and the actor's proprioception without history (configs/exp/demo.yaml)
    q = cfg.actor_critic.quantizer
    assert (q.levels, q.num_tokens) == ([32] * 32, 2)
    assert cfg.env.observations.policy.history_length == 1


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["algo.bogus=1"], "algo.bogus"),
        (["+algo.bogus=1"], "algo.bogus"),
        (["env.num_envs=0"], "env.num_envs"),
        (["env.num_envs=many"], "env.num_envs"),
        (["actor_critic.quantizer.levels=[8,1]"], "actor_critic.quantizer.levels[1]"),
        (["actor_critic.quantizer.bound=sigmoid"], "actor_critic.quantizer.bound"),
        (["actor_critic.quantizer.levels=[8,2]"], "actor_critic.quantizer.levels"),
        (
            ["actor_critic.universal_token.residual_mode=sideways"],
            "actor_critic.universal_token.residual_mode",
        ),
        (
            [f"env.commands.motion.encoder_sample_probs.{k}=0" for k in ("g1", "smpl", "teleop")],
            "env.commands.motion.encoder_sample_probs",
        ),
        (["env.commands.motion.encoder_sample_probs.g1=-1"], "env.commands.motion.encoder_sample_probs.g1"),
        (
            ["+env.commands.motion.encoder_sample_probs.vision=1"],
            "env.commands.motion.encoder_sample_probs.vision",
        ),
        (["sim.backend=bullet"], "sim.backend"),
        (["ray.learner_threads=-1"], "ray.learner_threads"),
        (["algo.actor_lr=inf"], "algo.actor_lr"),
        (["algo.clip_param=inf"], "algo.clip_param"),
        (["env.episode_length_s=inf"], "env.episode_length_s"),
        (["algo.gamma=nan"], "algo.gamma"),
        (
            ["env.rewards.motion_global_anchor_position_error_exp.weight=-inf"],
            "env.rewards.motion_global_anchor_position_error_exp.weight",
        ),
        (["sim.timestep=0.01"], "sim.timestep"),  # 0.01 s x 4 = 25 Hz, the motions are resampled to 50
        (["motions.control_fps=30"], "sim.timestep"),
        (["env.action_clip=0"], "env.action_clip"),
    ],
)
def test_bad_values_name_their_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        load_config(["+exp=demo", *overrides])
    assert key in str(err.value)


def test_override_syntaxes():
    assert load_config(["+exp=demo", "env.num_envs=7"]).env.num_envs == 7
    assert load_config(["+exp=demo", "++env.num_envs=9"]).env.num_envs == 9
    cfg = load_config(["+exp=demo", "+env.rewards.extra_term={weight: 0.5}"])
    assert cfg.env.rewards["extra_term"].weight == 0.5


def test_cli_config_show(capsys):
    assert main(["config", "show", "+exp=sonic_release"]) == 0
    out = capsys.readouterr().out
    assert "num_envs: 4096" in out and "actor_lr: 2.0e-05" in out


def test_cli_config_show_rejects_unknown_key(capsys):
    assert main(["config", "show", "+exp=sonic_release", "algo.bogus=1"]) != 0
    assert "algo.bogus" in capsys.readouterr().err


def test_rates_that_agree_in_another_split_are_accepted():
    cfg = load_config(["+exp=demo", "sim.timestep=0.01", "sim.decimation=2"])
    assert cfg.sim.timestep * cfg.sim.decimation == pytest.approx(1 / cfg.motions.control_fps)


def test_cli_names_a_non_finite_value_in_one_line(capsys):
    assert main(["config", "show", "algo.actor_lr=inf"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "sonic-ray: config error: config key 'algo.actor_lr': expected a finite number, got inf"
