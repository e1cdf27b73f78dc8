"""MujocoCpuSim specifics: threads, copy-on-write models, contact forces against MuJoCo's own."""

from __future__ import annotations

from dataclasses import fields

import mujoco
import numpy as np
import pytest
import torch

from sonic_ray.sim import SimState
from sonic_ray.sim.mujoco_cpu import MujocoCpuSim
from tests.sim.conftest import default_targets, random_state, standing


def test_threads_step_exactly_like_one(g1):
    """Threads pull chunks of envs in whatever order they get to them: the result is the same."""
    model, robot = g1
    sims = [MujocoCpuSim(model, num_envs=9, num_threads=t) for t in (1, 2, 3)]
    assert [s.num_threads for s in sims] == [1, 2, 3]
    for sim in sims:
        sim.reset(range(9), **random_state(robot, 9, seed=4))
        for _ in range(3):
            sim.step(default_targets(robot, 9))
    for other in sims[1:]:
        for f in fields(SimState):
            torch.testing.assert_close(
                getattr(sims[0].state, f.name), getattr(other.state, f.name), atol=0, rtol=0
            )
        other.close()


def test_models_are_shared_until_a_hook_copies_them(g1):
    model, robot = g1
    nominal = model.geom_friction.copy()
    sim = MujocoCpuSim(model, num_envs=3)
    shared = sim.env_model(0)
    assert all(sim.env_model(i) is shared for i in range(3))
    sim.set_friction([1], 0.4, 0.3)
    sim.set_body_mass_scale([1, 2], [0], torch.tensor([2.0, 0.5]))
    assert sim.env_model(0) is shared and sim.env_model(1) is not shared
    np.testing.assert_array_equal(model.geom_friction, nominal)
    assert np.all(sim.env_model(1).geom_friction[:, 0] == 0.4)
    assert sim.env_model(1).body_mass[1] == pytest.approx(2.0 * model.body_mass[1])
    assert sim.env_model(2).body_mass[1] == pytest.approx(0.5 * model.body_mass[1])
    sim.set_body_mass_scale([1], [0], 1.0)  # scales apply to the nominal value, not cumulatively
    assert sim.env_model(1).body_mass[1] == pytest.approx(model.body_mass[1])


def test_contact_forces_equal_the_sum_of_mujoco_contact_forces(g1):
    """cfrc_ext (our source) against a per-contact sum with mj_contactForce, in the world frame."""
    model, robot = g1
    m, sim = model, MujocoCpuSim(model, num_envs=1)
    # Replay the next step's first 3 substeps on a copy: its contacts are the 4th substep's, the one
    # cfrc_ext is computed from.
    ref = mujoco.MjData(m)
    sim.reset([0], **standing(robot, 1, height=0.01))
    for _ in range(7):
        sim.step(default_targets(robot, 1))
    d = sim.datas[0]
    ref.qpos[:], ref.qvel[:], ref.ctrl[:] = d.qpos, d.qvel, default_targets(robot, 1)[0].numpy()
    ref.qacc_warmstart[:] = d.qacc_warmstart
    mujoco.mj_step(m, ref, 3)
    mujoco.mj_forward(m, ref)
    want = np.zeros((m.nbody, 3))
    for c in range(ref.ncon):
        con, f6 = ref.contact[c], np.zeros(6)
        mujoco.mj_contactForce(m, ref, c, f6)
        f_w = con.frame.reshape(3, 3).T @ f6[:3]  # contact frame -> world; force on geom2
        want[m.geom_bodyid[con.geom2]] += f_w
        want[m.geom_bodyid[con.geom1]] -= f_w
    sim.step(default_targets(robot, 1))
    np.testing.assert_allclose(sim.state.contact_forces[0].numpy(), want[1:], atol=0.5)
    assert np.abs(want[1:, 2]).sum() > 100.0


def test_bad_inputs_name_the_argument(g1):
    model, robot = g1
    sim = MujocoCpuSim(model, num_envs=2)
    with pytest.raises(ValueError, match="joint_targets"):
        sim.step(torch.zeros(2, 3))
    with pytest.raises(IndexError, match="env_ids"):
        sim.push([5], torch.zeros(1, 3))
    with pytest.raises(ValueError, match="root_quat"):
        sim.reset([0], **{**standing(robot, 1), "root_quat": torch.zeros(1, 3)})
    with pytest.raises(ValueError, match="restitution"):
        sim.set_restitution([0], 1.5)
