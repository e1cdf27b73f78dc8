"""`bench motion`'s interleaved step comparison on a tiny store (no Ray): every mode's keys."""

import torch

from sonic_ray.bench.motion_probe import steps
from sonic_ray.motion.store import migrate
from tests.envs.env_builders import tiny_store


def test_steps_times_every_mode_on_the_same_episodes(tmp_path):
    migrate(tiny_store(tmp_path / "tiny.parquet", clips=4), tmp_path / "store")
    threads = torch.get_num_threads()
    try:  # the probe pins one torch thread (it runs in its own process in the bench)
        out = steps(str(tmp_path / "store"), [0, 2], ["window", "cached", "table"], num_envs=3, steps=4)
    finally:
        torch.set_num_threads(threads)
    for m in ("window", "cached", "table"):
        assert out[f"env_step_ms_{m}"] > 0 and out[f"env_step_cpu_ms_{m}"] > 0
    assert out["resets_per_step_window"] == out["resets_per_step_table"] == out["resets_per_step_cached"]
    assert out["frames_computed_per_step_window"] >= 0 and "light_frames_computed_per_step_window" in out


def test_cpu_ceiling_is_a_ratio_of_two_runs():
    from sonic_ray.bench.motion import cpu_2_over_1

    r = cpu_2_over_1(n=200_000, rounds=1)  # tiny: process start-up dominates, only the shape is checked
    assert 0.0 < r < 4.0
