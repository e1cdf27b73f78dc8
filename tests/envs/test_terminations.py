import torch
from env_builders import BODY_NAMES, perfect_state

from sonic_ray.envs import terminations as T
from sonic_ray.utils.rotations import quat_from_axis_angle, quat_mul


def test_nothing_fires_on_the_reference():
    env = perfect_state()
    for fn, kw in [(T.anchor_pos, {"threshold": 0.15}), (T.ee_body_pos, {"threshold": 0.15}),
                   (T.anchor_ori, {"threshold": 0.2}), (T.foot_pos, {"threshold": 0.2}),
                   (T.time_out, {}), (T.motion_clip_end, {})]:
        out = fn(env, **kw)
        assert out.shape == (4,) and out.dtype == torch.bool and not out.any(), fn.__name__


def test_time_out_and_clip_end():
    env = perfect_state()
    env.episode_length[1] = env.max_episode_length
    assert T.time_out(env).tolist() == [False, True, False, False]
    env.cmd.frame[2] = env.cmd.last_frame[2]
    assert T.motion_clip_end(env).tolist() == [False, False, True, False]


def test_anchor_pos_height_only_by_default():
    env = perfect_state()
    env.cmd.robot_anchor_pos_w[0, 0] += 1.0  # xy drift: not a failure
    env.cmd.robot_anchor_pos_w[1, 2] -= 0.2  # fell 20 cm
    assert T.anchor_pos(env, threshold=0.15).tolist() == [False, True, False, False]
    assert T.anchor_pos(env, threshold=0.15, z_only=False).tolist() == [True, True, False, False]


def test_adaptive_threshold_grows_with_reference_speed():
    env = perfect_state()
    env.cmd.robot_anchor_pos_w[:, 2] -= 0.2
    a = env.cmd.anchor_index
    env.cmd.ref_body_lin_vel_w[:, a] = 0.0
    env.cmd.ref_body_lin_vel_w[2:, a, 0] = 1.0  # 1 m/s: threshold 0.15 + 0.1 * 1 = 0.25
    out = T.anchor_pos(env, threshold=0.15, adaptive=True, lag_s=0.1)
    assert out.tolist() == [True, True, False, False]
    env.cmd.ref_body_lin_vel_w[2:, a, 0] = 100.0  # capped at 2 x threshold = 0.3 > 0.2
    assert not T.anchor_pos(env, threshold=0.15, adaptive=True, lag_s=0.1)[2:].any()
    env.cmd.robot_anchor_pos_w[3, 2] -= 0.2  # 0.4 m beyond even the cap
    assert T.anchor_pos(env, threshold=0.15, adaptive=True)[3]


def test_ee_body_pos_any_end_effector():
    env = perfect_state()
    hand = BODY_NAMES.index("right_wrist_yaw_link")
    env.robot.body_pos_w[3, hand, 2] += 0.16
    assert T.ee_body_pos(env, threshold=0.15).tolist() == [False, False, False, True]
    knee = BODY_NAMES.index("left_knee_link")  # not an end effector
    env.robot.body_pos_w[0, knee, 2] += 1.0
    assert not T.ee_body_pos(env, threshold=0.15)[0]


def test_anchor_ori_ignores_heading_but_sees_tilt():
    env = perfect_state()
    env.cmd.ref_anchor_quat_w = torch.tensor([1.0, 0, 0, 0]).expand(4, 4).clone()
    z = torch.tensor([0.0, 0.0, 1.0]).expand(4, 3)
    x = torch.tensor([1.0, 0.0, 0.0]).expand(4, 3)
    env.cmd.robot_anchor_quat_w = quat_from_axis_angle(z, torch.full((4,), 2.0))  # turned, upright
    assert not T.anchor_ori(env, threshold=0.2).any()
    tilt = torch.tensor([0.3, 0.8, 0.3, 0.8])  # 1 - cos: 0.045, 0.30
    env.cmd.robot_anchor_quat_w = quat_mul(env.cmd.robot_anchor_quat_w, quat_from_axis_angle(x, tilt))
    assert T.anchor_ori(env, threshold=0.2).tolist() == [False, True, False, True]


def test_foot_pos_is_xyz():
    env = perfect_state()
    foot = BODY_NAMES.index("left_ankle_roll_link")
    env.robot.body_pos_w[1, foot, 0] += 0.25
    env.robot.body_pos_w[2, foot, 1] += 0.1
    assert T.foot_pos(env, threshold=0.2).tolist() == [False, True, False, False]
