"""Actions are clipped to +-env.action_clip before they become joint targets: a diverging policy's
+-1e30 (or inf/nan) actions give large, finite penalties, never inf rewards or observations."""

import pytest
import torch
from env_builders import tiny_store

from sonic_ray.config import load_config
from sonic_ray.envs.factory import make_env


@pytest.mark.parametrize("value", [1e30, -1e30, float("inf"), float("nan")])
def test_huge_actions_give_finite_rewards(tmp_path, value):
    store = tiny_store(tmp_path / "tiny.parquet")
    cfg = load_config(
        ["+exp=demo", f"motions.store={store}", "device=cpu", "sim.backend=mujoco", "env.action_clip=5"]
    )
    env = make_env(cfg, num_envs=2)
    env.reset()
    actions = torch.full((2, env.action_dim), value)
    actions[1] = -actions[1]
    for _ in range(3):
        obs, reward, *_ = env.step(actions)
        assert torch.isfinite(reward).all(), reward
        assert all(torch.isfinite(v).all() for k, v in obs.items() if v.is_floating_point())
    assert env.action.abs().max() <= 5.0
