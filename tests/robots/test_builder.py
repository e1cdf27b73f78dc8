"""The model built from the table: it compiles, mirrors the table, and stands when held."""

import mujoco
import numpy as np
import pytest

from sonic_ray.robots import G1, build_model, build_spec
from sonic_ray.robots.builder import FLOOR_NAME


@pytest.fixture(scope="module")
def model():
    return build_model(G1)


def test_model_order_matches_table(model):
    assert model.njnt == 30 and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
    assert [model.joint(i).name for i in range(1, model.njnt)] == list(G1.joint_names)
    assert [model.body(i).name for i in range(1, model.nbody)] == list(G1.body_names)
    assert [model.joint(int(model.actuator_trnid[a, 0])).name for a in range(model.nu)] == list(
        G1.joint_names
    )


def test_model_values_match_table(model):
    np.testing.assert_allclose(model.jnt_range[1:, 0], G1.joint_lower)
    np.testing.assert_allclose(model.jnt_range[1:, 1], G1.joint_upper)
    np.testing.assert_allclose(model.dof_armature[6:], G1.armature)
    np.testing.assert_allclose(model.body_mass[1:], [b.mass for b in G1.bodies])
    np.testing.assert_allclose(model.actuator_gainprm[:, 0], G1.kp)
    np.testing.assert_allclose(model.actuator_biasprm[:, 1], -G1.kp)
    np.testing.assert_allclose(model.actuator_biasprm[:, 2], -G1.kd)
    np.testing.assert_allclose(model.actuator_forcerange[:, 1], G1.effort_limit)
    assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert model.opt.timestep == 0.005
    total = model.body_subtreemass[1]
    assert 30.0 < total < 38.0, total  # the G1 weighs about 35 kg with battery


def test_collision_filter_and_sites(model):
    robot_geoms = [i for i in range(model.ngeom) if model.geom_bodyid[i] != 0]
    assert robot_geoms, "robot has collision geoms"
    assert all(model.geom_contype[i] == 0 and model.geom_conaffinity[i] == 1 for i in robot_geoms)
    floor = model.geom(FLOOR_NAME).id
    assert model.geom_contype[floor] == 1
    assert all(model.geom_type[i] != mujoco.mjtGeom.mjGEOM_MESH for i in range(model.ngeom))
    assert {model.site(i).name for i in range(model.nsite)} == {f"vr_{p.name}" for p in G1.vr_points}
    selfcol = build_spec(G1, self_collision=True).compile()
    assert all(selfcol.geom_contype[i] == 1 for i in robot_geoms)


def test_no_floor_option():
    m = build_model(G1, floor=False, timestep=0.002)
    assert m.opt.timestep == 0.002
    assert all(m.geom_bodyid[i] != 0 for i in range(m.ngeom))


def _run_default_pose(model, seconds):
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("default").id)
    for _ in range(int(seconds / model.opt.timestep)):
        mujoco.mj_step(model, data)
    return data


def _bodies_touching_floor(model, data):
    floor = model.geom(FLOOR_NAME).id
    touching = set()
    for c in data.contact[: data.ncon]:
        if floor in (c.geom[0], c.geom[1]):
            other = c.geom[1] if c.geom[0] == floor else c.geom[0]
            touching.add(model.body(int(model.geom_bodyid[other])).name)
    return touching


def test_stands_in_default_pose_when_held():
    """PD on the default pose keeps the robot up on its feet for 2 s.

    The table's tracking gains (10 Hz on the motor armature) are deliberately soft: the two ankles
    give 2 x 28.5 N*m/rad against ~200 N*m/rad of toppling (m*g*h), so a passive stand needs a
    balancing policy. Here the PD is made 10x stiffer to check the model itself (masses, feet,
    contacts): it must settle, both soles on the floor, pelvis at standing height.
    """
    model = build_model(G1)
    model.actuator_gainprm[:, 0] *= 10.0
    model.actuator_biasprm[:, 1:3] *= 10.0
    data = _run_default_pose(model, 2.0)
    assert np.all(np.isfinite(data.qpos))
    assert 0.68 < data.qpos[2] < 0.80, data.qpos[2]
    assert np.abs(data.qvel).max() < 1.0
    assert np.abs(data.qpos[7:] - G1.default_joint_pos).max() < 0.1
    assert _bodies_touching_floor(model, data) == set(G1.feet_bodies)
    assert np.linalg.norm(data.qpos[:2]) < 0.1  # did not walk off or slide


def test_table_gains_fall_without_exploding(model):
    """With the soft tracking gains and no policy the robot topples; the sim must stay sane."""
    data = _run_default_pose(model, 2.0)
    assert np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))
    assert np.abs(data.qvel).max() < 20.0
    assert data.qpos[2] > 0.05  # lies on the floor, not through it
    assert np.all(np.abs(data.actuator_force) <= G1.effort_limit + 1e-9)
