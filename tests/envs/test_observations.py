import torch
from env_builders import BODY_NAMES, perfect_state, yaw

from sonic_ray.envs import observations as O
from sonic_ray.utils.rotations import quat_apply, quat_mul


def test_proprioception_shapes_and_frames():
    env = perfect_state()
    env.robot.root_quat_w = yaw(0.7, 4)
    env.robot.root_ang_vel_w = torch.tensor([0.0, 0.0, 2.0]).expand(4, 3)
    env.robot.root_lin_vel_w = quat_apply(env.robot.root_quat_w, torch.tensor([1.0, 0.0, 0.0]).expand(4, 3))
    torch.testing.assert_close(O.projected_gravity(env), torch.tensor([0.0, 0.0, -1.0]).expand(4, 3))
    torch.testing.assert_close(O.base_ang_vel(env), torch.tensor([0.0, 0.0, 2.0]).expand(4, 3))
    torch.testing.assert_close(O.base_lin_vel(env), torch.tensor([1.0, 0.0, 0.0]).expand(4, 3))
    torch.testing.assert_close(O.joint_pos_rel(env), torch.zeros(4, 29))
    assert O.joint_vel_rel(env).shape == (4, 29) and O.last_action(env).shape == (4, 29)


def test_joint_pos_rel_is_relative_to_the_offset_default_pose():
    # gear_sonic's default-joint randomisation moves the pose both the actions and joint_pos_rel
    # are centred on: a 0.01 rad calibration offset on joint 3 reads as -0.01 there.
    env = perfect_state()
    env.joint_offsets[:, 3] = 0.01
    env.robot.joint_pos[:, 5] += 0.2
    expected = torch.zeros(4, 29)
    expected[:, 3], expected[:, 5] = -0.01, 0.2
    torch.testing.assert_close(O.joint_pos_rel(env), expected)


def test_anchor_terms_are_identity_on_the_reference():
    env = perfect_state()
    torch.testing.assert_close(O.motion_anchor_pos_b(env), torch.zeros(4, 3))
    ident6 = torch.tensor([1.0, 0, 0, 0, 1, 0]).expand(4, 6)
    torch.testing.assert_close(O.motion_anchor_ori_b(env), ident6)


def test_robot_body_terms_are_in_the_anchor_frame():
    env = perfect_state()
    b = len(BODY_NAMES)
    before_p, before_o = O.robot_body_pos_b(env), O.robot_body_ori_b(env)
    assert before_p.shape == (4, b * 3) and before_o.shape == (4, b * 6)
    q = yaw(0.9, 4)[:, None].expand_as(env.robot.body_quat_w)
    env.robot.body_pos_w = quat_apply(q, env.robot.body_pos_w) + torch.tensor([1.0, 2.0, 0.0])
    env.robot.body_quat_w = quat_mul(q, env.robot.body_quat_w)
    a = env.cmd.anchor_index
    env.cmd.robot_anchor_pos_w, env.cmd.robot_anchor_quat_w = (
        env.robot.body_pos_w[:, a],
        env.robot.body_quat_w[:, a],
    )
    torch.testing.assert_close(O.robot_body_pos_b(env), before_p, atol=1e-5, rtol=0)
    torch.testing.assert_close(O.robot_body_ori_b(env), before_o, atol=1e-5, rtol=0)
