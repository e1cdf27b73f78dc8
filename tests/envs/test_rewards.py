import math

import pytest
import torch
from env_builders import BODY_NAMES, perfect_state, yaw

from sonic_ray.envs import rewards as R
from sonic_ray.robots import G1
from sonic_ray.utils.rotations import quat_apply, quat_from_axis_angle, quat_mul

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
    torch.testing.assert_close(r, torch.full((4,), math.exp(-(0.2**2) / 0.3**2)))


def test_anchor_orientation_kernel():
    env = perfect_state()
    env.cmd.robot_anchor_quat_w = quat_mul(yaw(0.5, 4), env.cmd.robot_anchor_quat_w)
    r = R.motion_global_anchor_orientation_error_exp(env, std=0.4)
    torch.testing.assert_close(r, torch.full((4,), math.exp(-(0.5**2) / 0.4**2)))


def test_relative_body_position_mean_over_the_tracked_bodies():
    env = perfect_state()
    knee = BODY_NAMES.index("left_knee_link")  # one of SONIC's 14 tracked bodies
    env.robot.body_pos_w[:, knee, 2] += 0.1
    hip_yaw = BODY_NAMES.index("left_hip_yaw_link")  # not tracked: its error is not seen
    env.robot.body_pos_w[:, hip_yaw, 0] += 1.0
    r = R.motion_relative_body_position_error_exp(env, std=0.3)
    # mean over 14 bodies of squared error: 0.01 / 14 = 7.14e-4; / 0.3^2 = 7.94e-3; exp(-) = 0.99209
    expected = math.exp(-(0.1**2 / 14) / 0.3**2)
    assert len(G1.tracked_body_names) == 14
    torch.testing.assert_close(r, torch.full((4,), expected))
    sub = R.motion_relative_body_position_error_exp(env, std=0.3, body_names=["left_knee_link"])
    torch.testing.assert_close(sub, torch.full((4,), math.exp(-(0.1**2) / 0.3**2)))


def test_relative_body_orientation():
    env = perfect_state()
    elbow = BODY_NAMES.index("left_elbow_link")
    env.robot.body_quat_w[:, elbow] = quat_mul(yaw(0.3, 4), env.robot.body_quat_w[:, elbow])
    r = R.motion_relative_body_orientation_error_exp(env, std=0.4)
    # 0.3 rad on one of 14 bodies: 0.09 / 14 / 0.16 = 0.040179; exp(-) = 0.96062
    torch.testing.assert_close(r, torch.full((4,), math.exp(-(0.3**2 / 14) / 0.4**2)))


def test_body_velocity_kernels():
    env = perfect_state()
    env.robot.body_lin_vel_w[:, :, 0] += 0.5
    env.robot.body_ang_vel_w[:, :, 1] -= 1.0
    torch.testing.assert_close(
        R.motion_global_body_linear_velocity_error_exp(env, std=1.0), torch.full((4,), math.exp(-0.25))
    )
    torch.testing.assert_close(
        R.motion_global_body_angular_velocity_error_exp(env, std=2.0), torch.full((4,), math.exp(-1.0 / 4.0))
    )


def test_vr_5point_is_invariant_to_where_the_robot_stands_and_faces():
    env = perfect_state()
    q = yaw(1.2, 4)[:, None].expand_as(env.robot.body_quat_w)
    shift = torch.tensor([3.0, -2.0, 0.0])
    env.robot.body_pos_w = quat_apply(q, env.robot.body_pos_w) + shift
    env.robot.body_quat_w = quat_mul(q, env.robot.body_quat_w)
    anchor = env.cmd.anchor_index
    env.cmd.robot_anchor_pos_w = env.robot.body_pos_w[:, anchor]
    env.cmd.robot_anchor_quat_w = env.robot.body_quat_w[:, anchor]
    torch.testing.assert_close(R.vr_5point_local_error_exp(env, std=0.1), torch.ones(4))
    # and a 5 cm wrist error in the anchor frame is seen: one of the 3 points (head, wrists)
    hand = BODY_NAMES.index("left_wrist_yaw_link")
    env.robot.body_pos_w[:, hand, 2] += 0.05
    expected = math.exp(-(0.05**2 / 3) / 0.1**2)  # 0.0025 / 3 / 0.01 = 0.0833; exp(-) = 0.92004
    torch.testing.assert_close(R.vr_5point_local_error_exp(env, std=0.1), torch.full((4,), expected))


def test_vr_5point_head_point_rides_half_a_metre_above_the_torso():
    env = perfect_state()
    assert [(p.body, p.offset) for p in G1.reward_points] == [
        ("torso_link", (0.0, 0.0, 0.5)),
        ("left_wrist_yaw_link", (0.0, 0.0, 0.0)),
        ("right_wrist_yaw_link", (0.0, 0.0, 0.0)),
    ]
    torso = BODY_NAMES.index("torso_link")  # not the anchor (pelvis): only the head point moves
    x = torch.tensor([1.0, 0.0, 0.0]).expand(4, 3)
    env.robot.body_quat_w[:, torso] = quat_mul(
        env.robot.body_quat_w[:, torso], quat_from_axis_angle(x, torch.full((4,), 0.2))
    )
    # the point (0, 0, 0.5) turned 0.2 rad about the torso's x moves by |d|^2 = 2 * 0.25 * (1 - cos 0.2)
    # = 0.0099667; mean over 3 points 0.0033222; / 0.1^2 = 0.33222; exp(-) = 0.71732
    expected = math.exp(-(0.5 * (1 - math.cos(0.2)) / 3) / 0.1**2)
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


def test_undesired_contacts_counts_bodies_over_threshold_but_feet_wrists_and_elbows():
    env = perfect_state()
    feet = BODY_NAMES.index("left_ankle_roll_link")
    knee = BODY_NAMES.index("left_knee_link")
    elbow, wrist = BODY_NAMES.index("right_elbow_link"), BODY_NAMES.index("left_wrist_yaw_link")
    env.robot.contact_forces[:, feet, 2] = 500.0  # feet are allowed
    env.robot.contact_forces[:, elbow, 0] = 50.0  # so are elbows and wrists (gear_sonic's exclusions)
    env.robot.contact_forces[:, wrist, 1] = 50.0
    env.robot.contact_forces[0, knee, 2] = 2.0
    env.robot.contact_forces[1, knee, 2] = 0.5  # under threshold
    torch.testing.assert_close(R.undesired_contacts(env, threshold=1.0), torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_anti_shake_dead_zone_on_the_wrists():
    env = perfect_state()
    env.robot.body_ang_vel_w.zero_()
    ids = [BODY_NAMES.index(b) for b in R.ANTI_SHAKE_BODIES]
    assert len(ids) == 2
    env.robot.body_ang_vel_w[:, ids[0], 0] = 1.0  # inside the 1.5 rad/s dead zone
    env.robot.body_ang_vel_w[:, BODY_NAMES.index("torso_link"), 0] = 9.0  # not a wrist: not seen
    torch.testing.assert_close(R.anti_shake_ang_vel_l2(env), torch.zeros(4))
    env.robot.body_ang_vel_w[:, ids[1], 2] = 2.5
    # (2.5 - 1.5)^2 = 1 on one wrist, 0 on the other: mean 0.5
    torch.testing.assert_close(R.anti_shake_ang_vel_l2(env), torch.full((4,), 0.5))


def test_joint_acc_l2_on_the_ankle_joints():
    env = perfect_state()
    torch.testing.assert_close(R.joint_acc_l2(env), torch.zeros(4))
    j = G1.joint_names
    assert [n for n in j if "ankle" in n] == [
        "left_ankle_pitch_joint",
        "left_ankle_roll_joint",
        "right_ankle_pitch_joint",
        "right_ankle_roll_joint",
    ]
    env.robot.joint_vel[:, j.index("left_ankle_pitch_joint")] += 0.1  # 0.1 rad/s in 0.02 s: 5 rad/s^2
    env.robot.joint_vel[:, j.index("right_ankle_roll_joint")] -= 0.2  # -10 rad/s^2
    env.robot.joint_vel[:, j.index("left_knee_joint")] += 1.0  # not an ankle: not seen
    # 5^2 + 10^2 = 125
    torch.testing.assert_close(R.joint_acc_l2(env), torch.full((4,), 125.0), rtol=1e-4, atol=0)
