"""The env bench on a tiny real run: the env timed, then its recorded simulator calls replayed as raw physics."""

import json

import pytest

pytestmark = pytest.mark.slow


def test_env_bench_splits_physics_and_mdp_time():
    import torch

    from sonic_ray.bench.env import run

    threads = torch.get_num_threads()
    try:
        out = json.loads(json.dumps(run(num_envs=(4,), threads=(1,), steps=3, warmup=1)))
    finally:
        torch.set_num_threads(threads)
    (p,) = out["points"]
    assert p["num_envs"] == 4 and p["threads"] == 1
    assert p["physics_steps_per_s"] > 0 and p["env_steps_per_s"] > 0
    # The in-loop physics is part of the env step: the split adds up and the share is a fraction.
    assert 0 < p["in_env_physics_ms_per_step"] < p["env_ms_per_step"]
    assert p["mdp_ms_per_step"] == pytest.approx(p["env_ms_per_step"] - p["in_env_physics_ms_per_step"])
    assert 0 < p["env_over_in_env_physics"] < 1
    # Raw physics replays the env's own simulator calls and lands on the env's final state.
    assert p["replay_exact"] is True and p["sim_calls"] >= 3
    assert p["fixed_pose_physics_steps_per_s"] > 0
    assert out["min_env_over_physics"] == p["env_over_physics"]
