"""One conformance suite for every importable BatchedSim backend, on the real G1 model."""

from __future__ import annotations

from dataclasses import fields

import mujoco
import numpy as np
import pytest
import torch

from sonic_ray.sim import BatchedSim, SimState, available_backends
from tests.sim.conftest import build, default_targets, random_state, standing

STATE_KEYS = ("root_pos", "root_quat", "root_lin_vel", "root_ang_vel", "joint_pos", "joint_vel")


def _state_of(sim) -> dict:
    s = sim.state
    return dict(
        root_pos=s.root_pos_w,
        root_quat=s.root_quat_w,
        root_lin_vel=s.root_lin_vel_w,
        root_ang_vel=s.root_ang_vel_w,
        joint_pos=s.joint_pos,
        joint_vel=s.joint_vel,
    )


def test_shapes_dtypes_devices(backend, g1):
    model, robot = g1
    sim = build(backend, model, num_envs=3)
    assert isinstance(sim, BatchedSim)
    n, j, b = 3, robot.num_joints, model.nbody - 1
    assert (sim.num_envs, sim.num_joints, sim.num_bodies) == (n, j, b)
    assert sim.step_dt == pytest.approx(4 * model.opt.timestep)
    want = dict(
        root_pos_w=(n, 3),
        root_quat_w=(n, 4),
        root_lin_vel_w=(n, 3),
        root_ang_vel_w=(n, 3),
        joint_pos=(n, j),
        joint_vel=(n, j),
        body_pos_w=(n, b, 3),
        body_quat_w=(n, b, 4),
        body_lin_vel_w=(n, b, 3),
        body_ang_vel_w=(n, b, 3),
        contact_forces=(n, b, 3),
        applied_torque=(n, j),
    )
    assert {f.name for f in fields(SimState)} == set(want)
    for name, shape in want.items():
        t = getattr(sim.state, name)
        assert tuple(t.shape) == shape, name
        assert t.dtype == torch.float32, name
        assert t.device == torch.device("cpu"), name
    assert sim.nonfinite_envs().shape == (n,) and sim.nonfinite_envs().dtype == torch.bool


def test_reset_sets_exactly_the_selected_envs(backend, g1):
    model, robot = g1
    sim = build(backend, model, num_envs=4)
    sim.reset([0, 1, 2, 3], **standing(robot, 4))
    sim.step(default_targets(robot, 4))
    before = {k: v.clone() for k, v in _state_of(sim).items()}
    new = random_state(robot, 2, seed=1)
    sim.reset(torch.tensor([1, 3]), **new)
    after = _state_of(sim)
    for k in STATE_KEYS:
        torch.testing.assert_close(after[k][[1, 3]], new[k], atol=2e-6, rtol=1e-5, msg=k)
        torch.testing.assert_close(after[k][[0, 2]], before[k][[0, 2]], atol=0, rtol=0, msg=k)
    # The root body's pose in the body arrays is the root state (wxyz, same order as qpos).
    root = robot.root_body_id
    torch.testing.assert_close(sim.state.body_pos_w[:, root], sim.state.root_pos_w, atol=1e-6, rtol=0)
    torch.testing.assert_close(sim.state.body_quat_w[:, root], sim.state.root_quat_w, atol=1e-6, rtol=0)
    assert torch.all(sim.state.contact_forces[[1, 3]] == 0)
    assert torch.all(sim.state.applied_torque[[1, 3]] == 0)


def test_body_state_equals_mujoco_kinematics_at_reset(backend, g1):
    """body_pos/quat from mj_kinematics and body-origin velocities from mj_objectVelocity (world)."""
    model, robot = g1
    sim = build(backend, model, num_envs=2)
    new = random_state(robot, 2, seed=2)
    sim.reset([0, 1], **new)
    d = mujoco.MjData(model)
    for i in range(2):
        d.qpos[:] = np.concatenate([new["root_pos"][i], new["root_quat"][i], new["joint_pos"][i]])
        local = np.empty(3)
        q = new["root_quat"][i].double().numpy()
        mujoco.mju_rotVecQuat(local, new["root_ang_vel"][i].double().numpy(), q * [1, -1, -1, -1])
        d.qvel[:] = np.concatenate([new["root_lin_vel"][i], local, new["joint_vel"][i]])
        mujoco.mj_forward(model, d)
        vel = np.array([_object_velocity(model, d, b) for b in range(1, model.nbody)])
        np.testing.assert_allclose(sim.state.body_pos_w[i].numpy(), d.xpos[1:], atol=1e-5)
        np.testing.assert_allclose(sim.state.body_quat_w[i].numpy(), d.xquat[1:], atol=1e-5)
        np.testing.assert_allclose(sim.state.body_ang_vel_w[i].numpy(), vel[:, :3], atol=1e-4)
        np.testing.assert_allclose(sim.state.body_lin_vel_w[i].numpy(), vel[:, 3:], atol=1e-4)


def _object_velocity(model, d, body: int) -> np.ndarray:
    out = np.zeros(6)
    mujoco.mj_objectVelocity(model, d, mujoco.mjtObj.mjOBJ_XBODY, body, out, 0)  # XBODY: at the frame origin
    return out


def test_pd_moves_a_joint_toward_an_offset_target(backend, g1):
    model, robot = g1
    sim = build(backend, model, num_envs=2)
    sim.reset([0, 1], **standing(robot, 2))
    j = robot.joint_index("left_elbow_joint")
    targets = default_targets(robot, 2)
    targets[1, j] += 0.4
    start = sim.state.joint_pos[:, j].clone()
    for _ in range(10):
        sim.step(targets)
    moved = sim.state.joint_pos[:, j] - start
    # env 0 (no offset) settles on the floor too; the offset must add most of its 0.4 rad in 0.2 s.
    assert moved[1] - moved[0] > 0.25
    tau = sim.state.applied_torque
    assert torch.all(tau.abs() <= torch.tensor(robot.effort_limit, dtype=torch.float32) + 1e-3)
    assert torch.any(tau != 0)


def test_deterministic(backend, g1):
    model, robot = g1
    runs = []
    for _ in range(2):
        sim = build(backend, model, num_envs=2)
        sim.reset([0, 1], **random_state(robot, 2, seed=3))
        for k in range(5):
            sim.step(default_targets(robot, 2) + 0.1 * np.sin(k))
        runs.append(sim.state.clone())
    for f in fields(SimState):
        torch.testing.assert_close(getattr(runs[0], f.name), getattr(runs[1], f.name), atol=0, rtol=0)


def test_nonfinite_env_is_flagged_and_reset_clears_it(backend, g1, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its instability warning to ./MUJOCO_LOG.TXT
    model, robot = g1
    start = standing(robot, 3, height=0.02)
    clean = build(backend, model, num_envs=3)  # one sim at a time: Isaac Lab keeps one per process
    clean.reset([0, 1, 2], **start)
    for _ in range(3):
        clean.step(default_targets(robot, 3))
    assert not clean.nonfinite_envs().any()
    want = {k: v.clone() for k, v in _state_of(clean).items()}
    broken = build(backend, model, num_envs=3)
    broken.reset([0, 1, 2], **start)
    nan = standing(robot, 1)
    nan["joint_vel"][0, 4] = float("nan")
    broken.reset([1], **nan)
    for _ in range(3):
        broken.step(default_targets(robot, 3))
    assert broken.nonfinite_envs().tolist() == [False, True, False]
    for k, v in _state_of(broken).items():
        torch.testing.assert_close(v[[0, 2]], want[k][[0, 2]], atol=0, rtol=0, msg=k)
    broken.reset([1], **standing(robot, 1))
    assert not broken.nonfinite_envs().any()
    broken.step(default_targets(robot, 3))
    assert not broken.nonfinite_envs().any()


def test_overspeed_env_is_flagged(backend, g1):
    model, robot = g1
    sim = build(backend, model, num_envs=2, max_qvel=50.0)
    fast = standing(robot, 2)
    fast["joint_vel"][1, 0] = 80.0
    sim.reset([0, 1], **fast)
    assert sim.nonfinite_envs().tolist() == [False, True]


def test_push_changes_only_targeted_envs(backend, g1):
    model, robot = g1
    sim = build(backend, model, num_envs=3)
    sim.reset([0, 1, 2], **standing(robot, 3))
    before = sim.state.clone()
    sim.push(torch.tensor([1]), torch.tensor([[0.5, -0.2, 0.1]]))
    torch.testing.assert_close(
        sim.state.root_lin_vel_w[1], before.root_lin_vel_w[1] + torch.tensor([0.5, -0.2, 0.1])
    )
    torch.testing.assert_close(sim.state.body_lin_vel_w[1, 0], sim.state.root_lin_vel_w[1])
    torch.testing.assert_close(
        sim.state.root_lin_vel_w[[0, 2]], before.root_lin_vel_w[[0, 2]], atol=0, rtol=0
    )


HOOKS = {
    "friction": lambda sim, ids: sim.set_friction(ids, 0.05, 0.05),
    "restitution": lambda sim, ids: sim.set_restitution(ids, 0.5),
    "mass": lambda sim, ids: sim.set_body_mass_scale(ids, [0, 15], torch.tensor([1.5])),
    "com": lambda sim, ids: sim.set_com_offset(ids, 15, torch.tensor([0.05, 0.0, 0.05])),
}


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_randomisation_hooks_affect_only_targeted_envs(backend, g1, hook):
    model, robot = g1
    sim = build(backend, model, num_envs=3)
    sim.reset([0, 1, 2], **standing(robot, 3, height=0.05))
    HOOKS[hook](sim, torch.tensor([1]))
    for _ in range(12):  # 0.24 s: lands and stands on the floor
        sim.step(default_targets(robot, 3))
    s = sim.state
    for name in ("root_pos_w", "joint_pos", "body_pos_w"):
        v = getattr(s, name)
        torch.testing.assert_close(v[0], v[2], atol=0, rtol=0, msg=name)
    assert (s.joint_pos[1] - s.joint_pos[0]).abs().max() > 1e-5 or (
        s.root_pos_w[1] - s.root_pos_w[0]
    ).abs().max() > 1e-5


def test_contact_forces_carry_the_weight_on_the_feet(backend, g1):
    model, robot = g1
    sim = build(backend, model, num_envs=1)
    sim.reset([0], **standing(robot, 1, height=0.01))
    for _ in range(15):
        sim.step(default_targets(robot, 1))
    f = sim.state.contact_forces[0]
    weight = float(model.body_mass.sum()) * 9.81
    assert 0.3 * weight < float(f[:, 2].sum()) < 3.0 * weight
    feet = list(robot.feet_body_ids)
    others = [b for b in range(robot.num_bodies) if b not in feet]
    assert float(f[feet, 2].sum()) > 0.9 * float(f[:, 2].sum())
    assert torch.all(f[others].abs() < 1e-3)


@pytest.mark.skipif("mujoco_warp" not in available_backends(), reason="needs both backends")
def test_backends_agree_on_an_open_loop_rollout(g1):
    """10 control steps (0.2 s) of a landing robot waving its arms, float64 CPU vs float32 Warp.

    Measured differences were ~1e-7 m (root), ~2e-6 rad (joints), ~3e-5 rad/s, ~6e-4 N; the
    tolerances leave room for solver-iteration and platform differences.
    """
    model, robot = g1
    out = []
    for backend in ("mujoco", "mujoco_warp"):
        sim = build(backend, model, num_envs=2)
        sim.reset([0, 1], **standing(robot, 2, height=0.02))
        for k in range(10):
            targets = default_targets(robot, 2)
            targets[:, 15:] += 0.3 * np.sin(0.5 * k)
            sim.step(targets)
        out.append(sim.state.clone())
    tol = dict(
        root_pos_w=1e-4,
        root_quat_w=1e-4,
        joint_pos=1e-4,
        body_pos_w=1e-4,
        joint_vel=1e-2,
        root_lin_vel_w=1e-2,
        body_lin_vel_w=1e-2,
        body_ang_vel_w=1e-2,
        contact_forces=1.0,
    )
    for name, atol in tol.items():
        torch.testing.assert_close(getattr(out[0], name), getattr(out[1], name), atol=atol, rtol=0, msg=name)


def test_snapshot_restore_steps_identically(backend, g1):
    """get_state/set_state carry everything a step depends on (warm start and randomised models too)."""
    model, robot = g1
    sim = build(backend, model, num_envs=3)
    sim.reset([0, 1, 2], **standing(robot, 3))  # on the floor: contacts, so the solver warm start matters
    sim.set_friction([1], torch.tensor([0.4]))
    sim.set_body_mass_scale([2], [0, 3], torch.tensor([[1.1, 0.9]]))
    g = torch.Generator().manual_seed(0)
    targets = [
        default_targets(robot, 3) + 0.2 * torch.randn(3, robot.num_joints, generator=g) for _ in range(8)
    ]
    for t in targets[:4]:
        sim.step(t)
    snap = sim.get_state()
    want = []
    for t in targets[4:]:
        sim.step(t)
        want.append(sim.state.clone())
    final = sim.get_state()  # taken before `fresh` exists: Isaac Lab keeps one simulation per process
    fresh = build(backend, model, num_envs=3)
    fresh.set_state(snap)
    for t, w in zip(targets[4:], want):
        fresh.step(t)
        for f in fields(SimState):
            assert torch.equal(getattr(fresh.state, f.name), getattr(w, f.name)), f.name
    _assert_same(fresh.get_state(), final)  # the whole snapshot (warm start included) agrees


def _assert_same(a, b, path="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif a is None or isinstance(a, str | int | float):
        assert a == b, path
    else:
        assert np.array_equal(np.asarray(a), np.asarray(b)), path
