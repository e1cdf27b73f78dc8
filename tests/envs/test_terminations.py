import torch
from env_builders import BODY_NAMES, perfect_state

from sonic_ray.envs import terminations as T
from sonic_ray.utils.rotations import quat_from_axis_angle, quat_mul


def test_nothing_fires_on_the_reference():
    env = perfect_state()
    for fn, kw in [
        (T.anchor_pos, {"threshold": 0.15}),
        (T.ee_body_pos, {"threshold": 0.15}),
        (T.anchor_ori, {"threshold": 0.2}),
        (T.foot_pos, {"threshold": 0.2}),
        (T.time_out, {}),
        (T.motion_clip_end, {}),
    ]:
        out = fn(env, **kw)
        assert out.shape == (4,) and out.dtype == torch.bool and not out.any(), fn.__name__


def test_time_out_and_clip_end():
    env = perfect_state()
    env.episode_length[1] = env.max_episode_length
    assert T.time_out(env).tolist() == [False, True, False, False]
    env.cmd.frame[2] = env.cmd.last_frame[2]
    assert T.motion_clip_end(env).tolist() == [False, False, True, False]


def test_anchor_pos_is_height_only():
    env = perfect_state()
    env.cmd.robot_anchor_pos_w[0, 0] += 1.0  # xy drift: not a failure
    env.cmd.robot_anchor_pos_w[1, 2] -= 0.2  # fell 20 cm
    assert T.anchor_pos(env, threshold=0.15).tolist() == [False, True, False, False]


def test_adaptive_threshold_is_gear_sonics_low_reference_rule():
    # Every anchor 0.2 m below its reference. Running reference heights: standing (0.79), crouched
    # (0.4 < 0.5: down_threshold 0.75 applies), crouched, and exactly 0.5 (not below: 0.15 applies).
    env = perfect_state()
    env.cmd.robot_anchor_pos_w[:, 2] -= 0.2
    env.cmd.ref_root_height_ema = torch.tensor([0.79, 0.4, 0.4, 0.5])
    env.cmd.robot_anchor_pos_w[2, 2] -= 0.6  # 0.8 m low: beyond even 0.75
    kw = dict(threshold=0.15, adaptive=True, down_threshold=0.75, root_height_threshold=0.5)
    # 0.2 > 0.15, 0.2 < 0.75, 0.8 > 0.75, 0.2 > 0.15
    assert T.anchor_pos(env, **kw).tolist() == [True, False, True, True]
    assert T.anchor_pos(env, threshold=0.15).tolist() == [True, True, True, True]  # not adaptive


def test_ee_body_pos_adaptive_and_height_only():
    env = perfect_state()
    env.cmd.ref_root_height_ema = torch.tensor([0.79, 0.3, 0.79, 0.79])
    hand = BODY_NAMES.index("left_wrist_yaw_link")
    env.robot.body_pos_w[:2, hand, 2] += 0.3  # 0.3 m high: past 0.15, inside 0.75
    env.robot.body_pos_w[2, hand, 0] += 0.5  # horizontal error: not this term's business
    kw = dict(threshold=0.15, adaptive=True, down_threshold=0.75, root_height_threshold=0.5)
    assert T.ee_body_pos(env, **kw).tolist() == [True, False, False, False]


def test_ee_body_pos_any_end_effector():
    env = perfect_state()
    hand = BODY_NAMES.index("right_wrist_yaw_link")
    env.robot.body_pos_w[3, hand, 2] += 0.16
    assert T.ee_body_pos(env, threshold=0.15).tolist() == [False, False, False, True]
    knee = BODY_NAMES.index("left_knee_link")  # not an end effector
    env.robot.body_pos_w[0, knee, 2] += 1.0
    assert not T.ee_body_pos(env, threshold=0.15)[0]


def test_anchor_ori_is_the_full_squared_angle_heading_included():
    env = perfect_state()
    env.cmd.ref_anchor_quat_w = torch.tensor([1.0, 0, 0, 0]).expand(4, 4).clone()
    z = torch.tensor([0.0, 0.0, 1.0]).expand(4, 3)
    x = torch.tensor([1.0, 0.0, 0.0]).expand(4, 3)
    # heading 0.4 rad: 0.16 rad^2 < 0.2; heading 0.5: 0.25 > 0.2;
    # tilt 0.44 rad: 0.1936 < 0.2; tilt 0.45 rad: 0.2025 > 0.2
    env.cmd.robot_anchor_quat_w = torch.cat(
        (
            quat_from_axis_angle(z[:2], torch.tensor([0.4, 0.5])),
            quat_from_axis_angle(x[:2], torch.tensor([0.44, 0.45])),
        )
    )
    assert T.anchor_ori(env, threshold=0.2).tolist() == [False, True, False, True]
    # evaluation's 1 rad^2: 0.9 rad turned (0.81) passes, 1.1 rad (1.21) fails, whatever the axis
    env.cmd.robot_anchor_quat_w = torch.cat(
        (
            quat_from_axis_angle(z[:2], torch.tensor([0.9, 1.1])),
            quat_from_axis_angle(x[:2], torch.tensor([0.9, 1.1])),
        )
    )
    assert T.anchor_ori(env, threshold=1.0).tolist() == [False, True, False, True]
    # a turn composed onto any reference orientation reads the same
    env.cmd.ref_anchor_quat_w = env.cmd.robot_anchor_quat_w.clone()
    turn = quat_from_axis_angle(z, torch.full((4,), 0.5))
    env.cmd.robot_anchor_quat_w = quat_mul(env.cmd.robot_anchor_quat_w, turn)
    assert T.anchor_ori(env, threshold=0.2).all() and not T.anchor_ori(env, threshold=0.3).any()


def test_foot_pos_is_xyz():
    env = perfect_state()
    foot = BODY_NAMES.index("left_ankle_roll_link")
    env.robot.body_pos_w[1, foot, 0] += 0.25
    env.robot.body_pos_w[2, foot, 1] += 0.1
    assert T.foot_pos(env, threshold=0.2).tolist() == [False, True, False, False]
