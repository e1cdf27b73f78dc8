import math

import mujoco
import numpy as np
import torch

from sonic_ray.utils import rotations as R


def _rand_quat(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return R.quat_normalize(torch.randn(n, 4, generator=g, dtype=torch.float64))


def test_quat_apply_matches_mujoco():
    q = _rand_quat(16)
    v = torch.randn(16, 3, dtype=torch.float64)
    ours = R.quat_apply(q, v)
    for i in range(16):
        ref = np.zeros(3)
        mujoco.mju_rotVecQuat(ref, v[i].numpy(), q[i].numpy())
        np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-12)


def test_quat_mul_matches_mujoco_and_inverse():
    a, b = _rand_quat(8, 1), _rand_quat(8, 2)
    ours = R.quat_mul(a, b)
    for i in range(8):
        ref = np.zeros(4)
        mujoco.mju_mulQuat(ref, a[i].numpy(), b[i].numpy())
        np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-12)
    ident = R.quat_mul(a, R.quat_conj(a))
    torch.testing.assert_close(ident, torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).expand(8, 4))


def test_matrix_roundtrip_and_axis_angle():
    q = _rand_quat(64, 3)
    q = torch.where(q[:, :1] < 0, -q, q)
    torch.testing.assert_close(R.matrix_to_quat(R.quat_to_matrix(q)), q)
    axis = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    qz = R.quat_from_axis_angle(axis, torch.tensor([math.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(
        R.quat_apply(qz, torch.tensor([[1.0, 0, 0]], dtype=torch.float64)),
        torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64),
    )
    torch.testing.assert_close(R.quat_to_axis_angle(qz), axis * math.pi / 2)


def test_slerp_endpoints_and_midpoint():
    axis = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    q0 = R.quat_from_axis_angle(axis, torch.tensor(0.0, dtype=torch.float64))
    q1 = R.quat_from_axis_angle(axis, torch.tensor(1.0, dtype=torch.float64))
    mid = R.quat_slerp(q0, q1, torch.tensor(0.5, dtype=torch.float64))
    torch.testing.assert_close(mid, R.quat_from_axis_angle(axis, torch.tensor(0.5, dtype=torch.float64)))
    torch.testing.assert_close(R.quat_slerp(q0, -q1, torch.tensor(1.0, dtype=torch.float64)), q1)
    assert float(R.quat_error_angle(q0, q1)) == pytest_approx(1.0)


def pytest_approx(x):
    import pytest

    return pytest.approx(x, abs=1e-9)


def test_yaw_quat_keeps_heading_only():
    yaw = R.quat_from_axis_angle(torch.tensor([0.0, 0, 1]), torch.tensor(0.7))
    pitch = R.quat_from_axis_angle(torch.tensor([0.0, 1, 0]), torch.tensor(0.3))
    torch.testing.assert_close(R.yaw_quat(R.quat_mul(yaw, pitch)), yaw)


def test_quat_from_rpy_is_yaw_pitch_roll_product():
    quat_mul, quat_apply, quat_from_axis_angle, quat_from_rpy = (
        R.quat_mul,
        R.quat_apply,
        R.quat_from_axis_angle,
        R.quat_from_rpy,
    )
    rpy = torch.tensor([[0.3, -0.2, 1.1], [0.0, 0.0, 0.0], [-2.5, 1.2, 3.0]], dtype=torch.float64)
    axes = torch.eye(3, dtype=torch.float64)
    expect = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64).expand(3, 4)
    for k in range(3):  # roll about x first, then pitch about y, then yaw about z, all world frame
        expect = quat_mul(quat_from_axis_angle(axes[k].expand(3, 3), rpy[:, k]), expect)
    torch.testing.assert_close(quat_from_rpy(rpy), expect, rtol=0, atol=1e-12)
    # rotating x by pure yaw pi/2 gives y
    q = quat_from_rpy(torch.tensor([0.0, 0.0, torch.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(
        quat_apply(q, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)),
        torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64),
        rtol=0,
        atol=1e-12,
    )
