"""`bench motion`'s interleaved step comparison on a tiny store (no Ray): every mode's keys."""

import pytest
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


@pytest.mark.slow
def test_plain_engine_imports_what_the_serial_engine_does(tmp_path):
    """The bench's Ray-free 2-process engine (its ceiling for the import's own work) writes the same
    clips as the serial engine."""
    from sonic_ray.bench.motion import plain_engine, write_sources
    from sonic_ray.motion.robot_context import robot_context
    from sonic_ray.motion.shard_import import import_sharded, list_files
    from sonic_ray.motion.store import iter_store

    write_sources(str(tmp_path / "src"), 6, clips_per_file=2, fps=30.0, min_s=1.0, max_s=1.5)
    files = list_files([tmp_path / "src"])
    got = {}
    for name, engine in (("serial", None), ("plain", plain_engine(2))):
        report = import_sharded(
            files, out=tmp_path / name, robot="g1", context_fn=robot_context, engine=engine, batch_files=1
        )
        assert not report["rejected"]
        got[name] = {c.name: c.joint_pos.tobytes() for c in iter_store(tmp_path / name)}
    assert len(got["plain"]) == 6 and got["plain"] == got["serial"]
