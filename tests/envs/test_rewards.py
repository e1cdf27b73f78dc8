import math

import pytest
import torch
from env_builders import BODY_NAMES, perfect_state, yaw

from sonic_ray.envs import rewards as R
from sonic_ray.utils.rotations import quat_mul

TRACKING = [
    ("motion_global_anchor_position_error_exp", 0.3),
    ("motion_global_anchor_orientation_error_exp", 0.4),
    ("motion_relative_body_position_error_exp", 0.3),
    ("motion_relative_body_orientation_error_exp", 0.4),
    ("motion_global_body_linear_velocity_error_exp", 1.0),
    ("motion_global_body_angular_velocity_error_exp", 3.14),
    ("vr_5point_local_error_exp", 0.1),
]


@pytest.mark.parametrize("name,std", TRACKING)
def test_tracking_kernels_are_one_on_the_reference(name, std):
    env = perfect_state()
    r = getattr(R, name)(env, std=std)
    assert r.shape == (4,)
    torch.testing.assert_close(r, torch.ones(4))


def test_anchor_position_kernel():
    env = perfect_state()
    env.cmd.robot_anchor_pos_w[:, 0] += 0.2  # 20 cm off in x
    r = R.motion_global_anchor_position_error_exp(env, std=0.3)
    torch.testing.assert_close(r, torch.full((4,), math.exp(-0.2**2 / 0.3**2)))


def test_anchor_orientation_kernel():
    env = perfect_state()
    env.cmd.robot_anchor_quat_w = quat_mul(yaw(0.5, 4), env.cmd.robot_anchor_quat_w)
    r = R.motion_global_anchor_orientation_error_exp(env, std=0.4)
    torch.testing.assert_close(r, torch.full((4,), math.exp(-0.5**2 / 0.4**2)))


def test_relative_body_position_mean_over_bodies():
    env = perfect_state()
    env.robot.body_pos_w[:, 3, 2] += 0.1  # one body of B is 10 cm off
    r = R.motion_relative_body_position_error_exp(env, std=0.3)
    expected = math.exp(-(0.1**2 / len(BODY_NAMES)) / 0.3**2)
    torch.testing.assert_close(r, torch.full((4,), expected))
    sub = R.motion_relative_body_position_error_exp(env, std=0.3, body_names=[BODY_NAMES[3]])
    torch.testing.assert_close(sub, torch.full((4,), math.exp(-0.1**2 / 0.3**2)))


def test_relative_body_orientation():
    env = perfect_state()
    env.robot.body_quat_w[:, 5] = quat_mul(yaw(0.3, 4), env.robot.body_quat_w[:, 5])
    r = R.motion_relative_body_orientation_error_exp(env, std=0.4)
    torch.testing.assert_close(r, torch.full((4,), math.exp(-(0.3**2 / len(BODY_NAMES)) / 0.4**2)))


def test_body_velocity_kernels():
    env = perfect_state()
    env.robot.body_lin_vel_w[:, :, 0] += 0.5
    env.robot.body_ang_vel_w[:, :, 1] -= 1.0
    torch.testing.assert_close(R.motion_global_body_linear_velocity_error_exp(env, std=1.0),
                               torch.full((4,), math.exp(-0.25)))
    torch.testing.assert_close(R.motion_global_body_angular_velocity_error_exp(env, std=2.0),
                               torch.full((4,), math.exp(-1.0 / 4.0)))


def test_vr_5point_is_invariant_to_where_the_robot_stands_and_faces():
    env = perfect_state()
    q = yaw(1.2, 4)[:, None].expand_as(env.robot.body_quat_w)
    shift = torch.tensor([3.0, -2.0, 0.0])
    from sonic_ray.utils.rotations import quat_apply

    env.robot.body_pos_w = quat_apply(q, env.robot.body_pos_w) + shift
    env.robot.body_quat_w = quat_mul(q, env.robot.body_quat_w)
    anchor = env.cmd.anchor_index
    env.cmd.robot_anchor_pos_w = env.robot.body_pos_w[:, anchor]
    env.cmd.robot_anchor_quat_w = env.robot.body_quat_w[:, anchor]
    torch.testing.assert_close(R.vr_5point_local_error_exp(env, std=0.1), torch.ones(4))
    # and a 5 cm hand error in the anchor frame is seen
    hand = BODY_NAMES.index("left_wrist_yaw_link")
    env.robot.body_pos_w[:, hand, 2] += 0.05
    expected = math.exp(-(0.05**2 / 5) / 0.1**2)
    torch.testing.assert_close(R.vr_5point_local_error_exp(env, std=0.1), torch.full((4,), expected))


def test_action_rate_l2():
    env = perfect_state()
    env.action[:, 0] = 0.3
    env.prev_action[:, 0] = -0.1
    env.action[:, 1] = 0.2
    torch.testing.assert_close(R.action_rate_l2(env), torch.full((4,), 0.4**2 + 0.2**2))


def test_joint_pos_limits_sums_violation():
    env = perfect_state()
    torch.testing.assert_close(R.joint_pos_limits(env), torch.zeros(4))
    env.robot.joint_pos[:, 0] = env.joint_soft_upper[0] + 0.1
    env.robot.joint_pos[:, 1] = env.joint_soft_lower[1] - 0.05
    torch.testing.assert_close(R.joint_pos_limits(env), torch.full((4,), 0.15), atol=1e-6, rtol=0)


def test_undesired_contacts_counts_non_feet_bodies_over_threshold():
    env = perfect_state()
    feet = BODY_NAMES.index("left_ankle_roll_link")
    knee = BODY_NAMES.index("left_knee_link")
    env.robot.contact_forces[:, feet, 2] = 500.0  # feet are allowed
    env.robot.contact_forces[0, knee, 2] = 2.0
    env.robot.contact_forces[1, knee, 2] = 0.5  # under threshold
    torch.testing.assert_close(R.undesired_contacts(env, threshold=1.0), torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_anti_shake_dead_zone():
    env = perfect_state()
    env.robot.body_ang_vel_w.zero_()
    ids = [BODY_NAMES.index(b) for b in R.ANTI_SHAKE_BODIES]
    env.robot.body_ang_vel_w[:, ids[0], 0] = 1.0  # inside the 1.5 rad/s dead zone
    torch.testing.assert_close(R.anti_shake_ang_vel_l2(env), torch.zeros(4))
    env.robot.body_ang_vel_w[:, ids[1], 2] = 2.5
    torch.testing.assert_close(R.anti_shake_ang_vel_l2(env), torch.full((4,), 1.0 / len(ids)))


def test_feet_acc_l2():
    env = perfect_state()
    torch.testing.assert_close(R.feet_acc_l2(env), torch.zeros(4))
    foot = BODY_NAMES.index("right_ankle_roll_link")
    env.robot.body_lin_vel_w[:, foot, 2] += 0.1  # 0.1 m/s in one 0.02 s step = 5 m/s^2
    torch.testing.assert_close(R.feet_acc_l2(env), torch.full((4,), 25.0), rtol=1e-4, atol=0)
