"""The shared per-frame arithmetic (`sonic_ray.motion.frames`): numpy and torch give the same
velocities, resampling a ramp is exact, local features remove the root/anchor pose. Milliseconds."""

import math

import numpy as np
import torch

from sonic_ray.motion.frames import (
    clip_angular_velocity,
    clip_velocity,
    resample_clip,
    smpl_joints_local,
    vr_local,
)
from sonic_ray.utils.rotations import quat_to_tan_norm


def test_velocities_are_clip_local_with_one_sided_ends_in_numpy_and_torch():
    frames = np.array([3, 1, 2])  # a one-frame clip in the middle
    x = np.array([0.0, 1.0, 4.0, 100.0, 7.0, 9.0])[:, None] * np.ones((1, 2))
    v = clip_velocity(x, frames, 10.0)
    # clip 0: (1-0)*10, (4-0)/2*10, (4-1)*10; clip 1: 0; clip 2: (9-7)*10 at both ends
    np.testing.assert_allclose(v[:, 0], [10.0, 20.0, 30.0, 0.0, 20.0, 20.0])
    vt = clip_velocity(torch.as_tensor(x, dtype=torch.float32), frames, 10.0)
    assert vt.dtype == torch.float32 and v.dtype == np.float64
    np.testing.assert_allclose(vt.numpy(), v, rtol=1e-6)


def test_angular_velocity_of_a_constant_yaw_rate():
    yaw = 0.3 * np.arange(5) / 50.0
    q = torch.as_tensor(np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1))
    w = clip_angular_velocity(q, np.array([5]), 50.0)
    np.testing.assert_allclose(w.numpy(), np.tile([0.0, 0.0, 0.3], (5, 1)), atol=1e-9)


def test_resampling_a_ramp_is_exact_and_equal_rates_return_the_input():
    x = np.arange(31, dtype=np.float64)[:, None] / 30.0  # 1 s at 30 Hz: value = time
    y = resample_clip(x, 30.0, 50.0, quat=False)
    np.testing.assert_allclose(y[:, 0], np.arange(51) / 50.0, atol=1e-12)
    assert resample_clip(x, 50.0, 50.0, quat=False) is x
    half = math.sqrt(0.5)
    q = np.array([[1.0, 0, 0, 0], [half, 0, 0, half], [0.0, 0, 0, 1]])  # yaw 0, 90, 180 degrees at 2 Hz
    qq = resample_clip(q, 2.0, 4.0, quat=True)
    np.testing.assert_allclose(qq[1], [math.cos(math.pi / 8), 0, 0, math.sin(math.pi / 8)], atol=1e-12)


def test_local_features_remove_the_root_and_anchor_pose():
    yaw90 = torch.tensor([[math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5)]], dtype=torch.float64)
    smpl = torch.zeros(1, 24, 3, dtype=torch.float64)
    smpl[0, 0] = torch.tensor([5.0, 5.0, 1.0])
    smpl[0, 1] = torch.tensor([5.0, 6.0, 1.0])  # 1 m along world +y = the root's +x after a 90 deg yaw
    local = smpl_joints_local(smpl, yaw90)
    np.testing.assert_allclose(local[0, :2].numpy(), [[0, 0, 0], [1, 0, 0]], atol=1e-12)
    anchor_pos = torch.tensor([[5.0, 5.0, 1.0]], dtype=torch.float64)
    pos, ori = vr_local(anchor_pos, yaw90, smpl[:, :2], yaw90[:, None].expand(1, 2, 4))
    np.testing.assert_allclose(pos[0].numpy(), [[0, 0, 0], [1, 0, 0]], atol=1e-12)
    identity = quat_to_tan_norm(torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64))
    np.testing.assert_allclose(
        ori[0].numpy(), identity.expand(2, 6).numpy(), atol=1e-12
    )  # points turn with the anchor
