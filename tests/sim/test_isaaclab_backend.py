"""The Isaac Lab 3 / Newton backend beyond the shared conformance suite (which runs it as `[isaaclab]`).

Runs in .venv-isaaclab (Python 3.12, `make test-isaaclab`); in the default 3.11 venv only the
missing-install message is checked and the rest skips.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sonic_ray.sim import available_backends, make_sim
from tests.sim.conftest import build, default_targets, standing

HAVE_ISAACLAB = "isaaclab" in available_backends()
needs_isaaclab = pytest.mark.skipif(
    not HAVE_ISAACLAB, reason="Isaac Lab 3 not installed (Python 3.12: make test-isaaclab)"
)


@pytest.mark.skipif(HAVE_ISAACLAB, reason="Isaac Lab is installed here")
def test_missing_isaaclab_names_what_to_install(g1):
    with pytest.raises(ImportError, match="make isaaclab-setup"):
        make_sim("isaaclab", g1[0], mjcf="<mujoco/>", num_envs=1)


@needs_isaaclab
def test_usd_is_converted_once_per_mjcf(tmp_path):
    from sonic_ray.robots import model_mjcf
    from sonic_ray.sim.isaaclab_usd import cached_usd, robot_only_mjcf

    mjcf = robot_only_mjcf(model_mjcf("g1"))
    first = cached_usd(mjcf, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cached_usd(mjcf, tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert (first.parent / "source.xml").read_text() == mjcf
    other = cached_usd(robot_only_mjcf(model_mjcf("g1", timestep=0.002)), tmp_path)
    assert other != first and other.is_file()
    assert "<actuator" not in mjcf and "floor" not in mjcf


@needs_isaaclab
def test_agrees_with_mujoco_cpu_on_an_open_loop_rollout(g1):
    """50 control steps (1 s) of a landing robot waving its arms: Isaac Lab / Newton / MuJoCo Warp
    (float32, model rebuilt from USD) against MuJoCo CPU (float64, the original model).

    Measured (2026-12-03, CPU): max differences after 1 s ~1e-5 m and rad (root, joints, bodies),
    ~2e-4 rad/s (joint velocities), ~4e-3 N (contact forces), ~2e-4 N m (torques): the same PD,
    contacts and solver. The tolerances are ~50x those, for platform and solver-iteration noise.
    """
    model, robot = g1
    out = []
    for backend in ("mujoco", "isaaclab"):
        sim = build(backend, model, num_envs=2)
        sim.reset([0, 1], **standing(robot, 2, height=0.02))
        for k in range(50):
            targets = default_targets(robot, 2)
            targets[:, 15:] += 0.3 * np.sin(0.5 * k)
            sim.step(targets)
        out.append(sim.state.clone())
    tol = dict(
        root_pos_w=5e-4,
        root_quat_w=5e-4,
        joint_pos=5e-4,
        body_pos_w=5e-4,
        joint_vel=1e-2,
        root_lin_vel_w=1e-2,
        body_lin_vel_w=1e-2,
        body_ang_vel_w=1e-2,
        contact_forces=0.5,
        applied_torque=1e-2,
    )
    for name, atol in tol.items():
        torch.testing.assert_close(getattr(out[1], name), getattr(out[0], name), atol=atol, rtol=0, msg=name)


@needs_isaaclab
def test_tracking_env_steps_on_isaaclab(tmp_path):
    """TrackingEnv unchanged on the isaaclab backend: reset, 10 policy steps with the demo's events
    (randomisation hooks, pushes), finite observations and rewards, and the robot stays up."""
    from sonic_ray.config import load_config
    from sonic_ray.envs.factory import make_env
    from tests.envs.env_builders import tiny_store

    store = tiny_store(tmp_path / "tiny.parquet")
    cfg = load_config(["+exp=demo", f"motions.store={store}", "device=cpu", "sim.backend=isaaclab"])
    env = make_env(cfg, num_envs=2)
    assert type(env.sim).__name__ == "IsaacLabSim"
    obs = env.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        obs, reward, terminated, truncated, _ = env.step(0.1 * torch.randn(2, env.action_dim, generator=g))
        assert torch.isfinite(reward).all(), reward
        assert all(torch.isfinite(v).all() for v in obs.values() if v.is_floating_point())
    assert not env.sim.nonfinite_envs().any()
    assert float(env.sim.state.root_pos_w[:, 2].min()) > 0.5


@needs_isaaclab
def test_env_bench_runs_isaaclab_beside_mujoco():
    """`sonic-ray bench env --backend isaaclab`: both backends at each N in one run, and the physics
    replay (get_state/set_state) lands on the env's final state on both."""
    import json

    from sonic_ray.bench.env import run

    threads = torch.get_num_threads()
    try:
        out = json.loads(json.dumps(run(num_envs=(2,), threads=(1,), steps=2, warmup=1, backend="isaaclab")))
    finally:
        torch.set_num_threads(threads)
    by_backend = {p["backend"]: p for p in out["points"]}
    assert set(by_backend) == {"isaaclab", "mujoco"}
    il, mj = by_backend["isaaclab"], by_backend["mujoco"]
    assert il["replay_exact"] is True and mj["replay_exact"] is True
    assert il["env_steps_per_s"] > 0 and il["first_step_s"] > 0 and il["build_s"] > 0
    assert 0 < il["in_env_physics_ms_per_step"] < il["env_ms_per_step"]


@needs_isaaclab
@pytest.mark.slow
@pytest.mark.ray
def test_smoke_training_through_ray_and_cross_simulator_eval(tmp_path):
    """`sonic-ray train +exp=smoke sim.backend=isaaclab` for 2 iterations through a local Ray (the
    checkpoint carries the runner's env snapshot, sim included), then that checkpoint evaluated on
    Isaac Lab and on MuJoCo CPU. The policy is barely trained (it falls), so this checks the path and
    that the simulators agree on it: measured on a 3-iteration checkpoint, the same completed share
    on every clip and MPJPE within 0.07 mm."""
    import pandas as pd
    import ray

    from sonic_ray.config import load_config
    from sonic_ray.eval.pipeline import evaluate_checkpoint_local, plan_evaluation
    from sonic_ray.train.driver import Trainer
    from tests.envs.env_builders import tiny_store

    store = tiny_store(tmp_path / "tiny.parquet")
    run = tmp_path / "run"
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        tr = Trainer(
            load_config(
                [
                    "+exp=smoke",
                    "logging.wandb_mode=disabled",
                    "env.num_envs=8",
                    "algo.num_steps_per_env=6",
                    "sim.backend=isaaclab",
                    f"motions.store={store}",
                    f"run_dir={run}",
                    "algo.max_iterations=2",
                    "algo.save_interval=2",
                ]
            )
        )
        try:
            last = tr.run()
        finally:
            tr.close()
    finally:
        ray.shutdown()
    assert last["iteration"] == 2 and (run / "checkpoints" / "iter_000002").is_dir()
    clips = {}
    for backend in ("isaaclab", "mujoco"):
        plan = plan_evaluation(run, [f"sim.backend={backend}"], max_tasks=1, num_envs=3, blind=False)
        evaluate_checkpoint_local(plan, tmp_path / backend, progress=False)
        clips[backend] = pd.read_parquet(tmp_path / backend / "clips.parquet").set_index("clip").sort_index()
    il, mj = clips["isaaclab"], clips["mujoco"]
    assert list(il.index) == list(mj.index) and len(il) == 3
    np.testing.assert_allclose(il["completed"], mj["completed"], atol=0.1)
    np.testing.assert_allclose(il["mpjpe_l_mm"], mj["mpjpe_l_mm"], atol=5.0)
