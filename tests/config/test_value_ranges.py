"""Every float field of the typed config has a range, checked before any Ray process starts: a bad
value fails with one line naming its key and what was expected (exit 2 from the CLI, no traceback)."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest
from omegaconf import OmegaConf

from sonic_ray.cli import main
from sonic_ray.config import ConfigError, load_config
from sonic_ray.config.compose import compose, to_typed
from sonic_ray.config.schema import SonicConfig

# key -> out-of-range values (besides inf/nan, which every float refuses).
OUT_OF_RANGE = {
    "motions.control_fps": [0.0, -50.0],
    "sim.timestep": [0.0, -0.005, 0.01],
    "env.episode_length_s": [0.0, -1.0, 0.01],
    "env.action_clip": [0.0, -1.0],
    "env.commands.motion.future_dt": [0.0, -0.1],
    "env.commands.motion.smpl_future_dt": [0.0],
    "env.commands.motion.failure_rate_cap": [0.0],
    "env.commands.motion.uniform_ratio": [-0.1, 1.5],
    "env.commands.motion.pre_failure_window_s": [-1.0],
    "env.commands.motion.rate_smoothing": [0.0, 1.5],
    "actor_critic.init_noise_std": [0.0, 0.9],
    "actor_critic.min_std": [0.0, 0.9],
    "actor_critic.max_std": [0.01],
    "aux_losses.g1_recon": [-0.01],
    "aux_losses.g1_smpl_align": [-1.0],
    "aux_losses.g1_teleop_align": [-1.0],
    "aux_losses.teleop_smpl_align": [-1.0],
    "aux_losses.smpl_reencode_g1": [-1.0],
    "algo.clip_param": [0.0, 1.5],
    "algo.gamma": [0.0, 1.01],
    "algo.lam": [-0.1, 1.01],
    "algo.entropy_coef": [-0.01],
    "algo.value_loss_coef": [-1.0],
    "algo.desired_kl": [0.0],
    "algo.actor_lr": [0.0, -1e-4, 2.0],
    "algo.critic_lr": [0.0, 2.0],
    "algo.lr_min": [0.0, 0.5],
    "algo.lr_max": [1e-6, 2.0],
    "algo.max_grad_norm": [0.0],
    "ray.cpus_per_env_runner": [-1.0],
    "ray.gpus_per_env_runner": [-1.0],
    "ray.cpus_per_learner": [-1.0],
    "ray.gpus_per_learner": [-1.0],
    "callbacks.eval_cpus_per_task": [0.0],
}
# Float fields with no range beyond finiteness (a reward weight's sign is the term's meaning).
ANY_FINITE = set()


def _float_fields(cls, prefix=""):
    """Dotted keys of every scalar float field reachable through nested dataclass fields."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _float_fields(tp, key + ".")
        elif tp is float:
            yield key


def test_every_float_field_has_a_range_case():
    assert set(_float_fields(SonicConfig)) - ANY_FINITE == set(OUT_OF_RANGE)


CASES = [(k, v) for k, vs in OUT_OF_RANGE.items() for v in vs]
CASES += [(k, v) for k in OUT_OF_RANGE for v in (math.inf, -math.inf, math.nan)]
# Keys checked together with another (min <= init <= max std, lr_min <= lr_max): either may be named.
PAIRED = {
    "actor_critic.min_std": "actor_critic.init_noise_std",
    "actor_critic.max_std": "actor_critic.init_noise_std",
    "algo.lr_max": "algo.lr_min",
}


@pytest.fixture(scope="module")
def demo():
    return compose(["+exp=demo"])  # composed once; each case edits a copy (Hydra takes ~0.5 s a compose)


@pytest.mark.parametrize("key, value", CASES)
def test_an_out_of_range_float_is_refused_naming_its_key(demo, key, value):
    conf = demo.copy()
    OmegaConf.update(conf, key, value)
    with pytest.raises(ConfigError) as err:
        to_typed(conf)
    named = [f"config key '{k}'" for k in (key, PAIRED.get(key, key))]
    assert any(n in str(err.value) for n in named), str(err.value)


MOTION, EVENTS = "env.commands.motion", "env.events.terms.push_robot"
OBS = "env.observations.policy.terms.base_ang_vel"


@pytest.mark.parametrize(
    "override, key",
    [
        (f"{MOTION}.reset_pose_noise.root_yaw=[0.2,-0.2]", f"{MOTION}.reset_pose_noise.root_yaw"),
        (f"{EVENTS}.interval_range_s=[6.0,4.0]", f"{EVENTS}.interval_range_s"),
        (f"{EVENTS}.interval_range_s=[0.0,4.0]", f"{EVENTS}.interval_range_s"),
        (f"{OBS}.noise=-0.2", f"{OBS}.noise"),
    ],
)
def test_ranges_inside_dicts_and_lists_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")):
        load_config(["+exp=demo", override])


@pytest.mark.parametrize("command", ["train", "config show"])
def test_the_cli_says_one_line_and_exits_2(command, capsys):
    assert main([*command.split(), "algo.clip_param=1.5"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert "'algo.clip_param'" in err and "(0, 1]" in err
