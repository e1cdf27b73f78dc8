"""Torch FK against MuJoCo's own kinematics."""

import mujoco
import numpy as np
import pytest
import torch

from sonic_ray.robots import TorchFK, build_spec, load_model


@pytest.fixture(scope="module")
def g1():
    return load_model("g1")


def _random_states(robot, n, seed):
    rng = np.random.default_rng(seed)
    q = rng.uniform(robot.joint_lower, robot.joint_upper, size=(n, robot.num_joints))
    root_pos = rng.normal(size=(n, 3))
    root_quat = rng.normal(size=(n, 4))
    root_quat /= np.linalg.norm(root_quat, axis=1, keepdims=True)
    return root_pos, root_quat, q


def _mujoco_poses(model, root_pos, root_quat, q):
    data = mujoco.MjData(model)
    pos, quat = [], []
    for i in range(len(q)):
        data.qpos[:3], data.qpos[3:7], data.qpos[7:] = root_pos[i], root_quat[i], q[i]
        mujoco.mj_kinematics(model, data)
        pos.append(data.xpos[1:].copy())
        quat.append(data.xquat[1:].copy())
    return np.stack(pos), np.stack(quat)


def test_fk_matches_mj_kinematics_float64(g1):
    model, robot = g1
    fk = TorchFK(model, robot, dtype=torch.float64)
    root_pos, root_quat, q = _random_states(robot, 64, seed=0)
    body_pos_w, body_quat_w = fk.forward(torch.tensor(root_pos), torch.tensor(root_quat), torch.tensor(q))
    assert body_pos_w.shape == (64, 30, 3) and body_quat_w.shape == (64, 30, 4)
    ref_pos, ref_quat = _mujoco_poses(model, root_pos, root_quat, q)
    np.testing.assert_allclose(body_pos_w.numpy(), ref_pos, atol=1e-5)
    # q and -q are the same rotation
    dots = np.abs(np.sum(body_quat_w.numpy() * ref_quat, axis=-1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-9)


def test_fk_broadcasts_leading_dims_and_points(g1):
    model, robot = g1
    fk = TorchFK(model, robot, dtype=torch.float64)
    root_pos, root_quat, q = _random_states(robot, 6, seed=1)
    flat = fk(torch.tensor(root_pos), torch.tensor(root_quat), torch.tensor(q))
    nested = fk(
        torch.tensor(root_pos).view(2, 3, 3),
        torch.tensor(root_quat).view(2, 3, 4),
        torch.tensor(q).view(2, 3, -1),
    )
    torch.testing.assert_close(nested[0].reshape(6, 30, 3), flat[0])
    pts = fk.points(*flat, robot.smpl_keypoints)
    assert pts.shape == (6, 24, 3)
    # VR points equal MuJoCo's sites, which the builder placed at the same offsets
    data = mujoco.MjData(model)
    data.qpos[:3], data.qpos[3:7], data.qpos[7:] = root_pos[0], root_quat[0], q[0]
    mujoco.mj_kinematics(model, data)
    vr = fk.points(flat[0][:1], flat[1][:1], fk.point_table(robot.vr_points))
    sites = np.stack([data.site(f"vr_{p.name}").xpos for p in robot.vr_points])
    np.testing.assert_allclose(vr[0].numpy(), sites, atol=1e-9)


def test_fk_float32_default_and_bad_width(g1):
    model, robot = g1
    fk = TorchFK(model, robot)
    pos, quat = fk(torch.zeros(3), torch.tensor([1.0, 0, 0, 0]), torch.zeros(29))
    assert pos.dtype == torch.float32 and pos.shape == (30, 3)
    with pytest.raises(ValueError, match="expected 29"):
        fk(torch.zeros(3), torch.tensor([1.0, 0, 0, 0]), torch.zeros(28))


def test_fk_handles_fixed_bodies_and_offset_joint_anchors(g1):
    """An external description may weld extra bodies and put joint anchors off the body origin."""
    _, robot = g1
    spec = build_spec(robot)
    spec.body("torso_link").add_body(name="head_link", pos=[0.01, 0.0, 0.4], quat=[0.9, 0.1, 0.3, 0.0])
    spec.joint("left_knee_joint").pos = [0.01, -0.02, 0.03]
    spec.joint("right_elbow_joint").ref = 0.3
    model = spec.compile()
    fk = TorchFK(model, dtype=torch.float64)  # no table: every body of the model, model order
    assert "head_link" in fk.body_names and fk.num_bodies == 31
    root_pos, root_quat, q = _random_states(robot, 16, seed=2)
    body_pos_w, body_quat_w = fk(torch.tensor(root_pos), torch.tensor(root_quat), torch.tensor(q))
    ref_pos, ref_quat = _mujoco_poses(model, root_pos, root_quat, q)
    np.testing.assert_allclose(body_pos_w.numpy(), ref_pos, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(body_quat_w.numpy() * ref_quat, -1)), 1.0, atol=1e-9)
    # With the table, the output is the table's 30 bodies even though the model has 31.
    pos30, _ = TorchFK(model, robot, dtype=torch.float64)(
        torch.tensor(root_pos), torch.tensor(root_quat), torch.tensor(q)
    )
    assert pos30.shape == (16, 30, 3)
