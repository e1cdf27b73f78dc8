"""The env bench on a tiny real run: the env timed, then its recorded simulator calls replayed as raw
physics."""

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


def test_machine_scale_reports_bare_mj_step_threads():
    from sonic_ray.bench.env import machine_scale
    from sonic_ray.robots import load_model

    model, _ = load_model("g1")
    m = machine_scale(model, threads=2, envs_per_thread=2, seconds=0.05, repeats=1)
    assert m["threads"] == 2 and len(m["mj_step_scale_all"]) == 1
    assert m["one_thread_env_steps_per_s"] > 0 and m["mj_step_scale"] > 0
