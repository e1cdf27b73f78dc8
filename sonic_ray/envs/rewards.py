"""Reward terms: one function per term, `(env, **params) -> (N,)`, named as configs/env/rewards names them.

Each term returns the raw kernel value; the reward manager multiplies by weight x step_dt. What
a term reads from `env` (the TrackingEnv, or any object with the same attributes):

  env.cmd     reference and anchor quantities of the current step (see MotionCommand): ref_anchor_pos_w
              (N,3), ref_anchor_quat_w (N,4), robot_anchor_pos_w, robot_anchor_quat_w,
              ref_body_pos_w / ref_body_quat_w / ref_body_lin_vel_w / ref_body_ang_vel_w (N,B,·),
              ref_body_pos_rel_w (N,B,3) and ref_body_quat_rel_w (N,B,4) (the reference re-anchored
              onto the robot, BeyondMimic), body_ids(names) -> (K,) long.
  env.robot   the simulator state: joint_pos (N,J), body_pos_w (N,B,3), body_quat_w (N,B,4),
              body_lin_vel_w / body_ang_vel_w (N,B,3), contact_forces (N,B,3).
  env.action, env.prev_action (N,A); env.joint_soft_lower / joint_soft_upper (J,);
  env.prev_body_lin_vel_w (N,B,3) (the previous step's robot body velocities); env.step_dt.

Body indices are the robot's bodies in RobotSpec order (pelvis first); `body_names=None` means all.
"""

from __future__ import annotations

import torch

from sonic_ray.envs.command import robot_anchor_rot
from sonic_ray.utils.rotations import quat_error_angle, quat_to_matrix

# SONIC's five local reward points (wrists, pelvis, ankles) on the G1.
VR_5POINT_BODIES = ("left_wrist_yaw_link", "right_wrist_yaw_link", "pelvis",
                    "left_ankle_roll_link", "right_ankle_roll_link")
# Small links that jitter: the wrists and the torso (which carries the head point).
ANTI_SHAKE_BODIES = ("left_wrist_yaw_link", "right_wrist_yaw_link", "torso_link")
FEET_BODIES = ("left_ankle_roll_link", "right_ankle_roll_link")


def _sel(x: torch.Tensor, env, body_names) -> torch.Tensor:
    """Bodies of (N,B,·) selected by name (all when None)."""
    return x if body_names is None else x.index_select(1, env.cmd.body_ids(body_names))


def _exp_kernel(sq_err: torch.Tensor, std: float) -> torch.Tensor:
    return torch.exp(-sq_err / (std * std))


def motion_global_anchor_position_error_exp(env, std: float) -> torch.Tensor:
    """Anchor (torso) position in the world against the reference's. (N,)"""
    err = (env.cmd.ref_anchor_pos_w - env.cmd.robot_anchor_pos_w).square().sum(-1)
    return _exp_kernel(err, std)


def motion_global_anchor_orientation_error_exp(env, std: float) -> torch.Tensor:
    """Anchor orientation error angle (rad) in the world. (N,)"""
    err = quat_error_angle(env.cmd.ref_anchor_quat_w, env.cmd.robot_anchor_quat_w).square()
    return _exp_kernel(err, std)


def motion_relative_body_position_error_exp(env, std: float, body_names=None) -> torch.Tensor:
    """Body positions against the reference re-anchored onto the robot (yaw and xy follow the
    robot, height follows the reference): rewards the pose, not where in the room it is. (N,)"""
    diff = _sel(env.cmd.ref_body_pos_rel_w, env, body_names) - _sel(env.robot.body_pos_w, env, body_names)
    return _exp_kernel(diff.square().sum(-1).mean(-1), std)


def motion_relative_body_orientation_error_exp(env, std: float, body_names=None) -> torch.Tensor:
    """Body orientations against the yaw-re-anchored reference. (N,)"""
    ang = quat_error_angle(_sel(env.cmd.ref_body_quat_rel_w, env, body_names),
                           _sel(env.robot.body_quat_w, env, body_names))
    return _exp_kernel(ang.square().mean(-1), std)


def motion_global_body_linear_velocity_error_exp(env, std: float, body_names=None) -> torch.Tensor:
    """Body linear velocities (world) against the reference's. (N,)"""
    diff = _sel(env.cmd.ref_body_lin_vel_w, env, body_names) - _sel(env.robot.body_lin_vel_w, env, body_names)
    return _exp_kernel(diff.square().sum(-1).mean(-1), std)


def motion_global_body_angular_velocity_error_exp(env, std: float, body_names=None) -> torch.Tensor:
    """Body angular velocities (world) against the reference's. (N,)"""
    diff = _sel(env.cmd.ref_body_ang_vel_w, env, body_names) - _sel(env.robot.body_ang_vel_w, env, body_names)
    return _exp_kernel(diff.square().sum(-1).mean(-1), std)


def vr_5point_local_error_exp(env, std: float, body_names=VR_5POINT_BODIES) -> torch.Tensor:
    """SONIC's 5 points (wrists, pelvis, ankles), each in its own anchor's frame: the reference's
    points relative to the reference anchor against the robot's relative to the robot anchor.
    Invariant to where the robot stands and faces, so it keeps shaping after drift. (N,)"""
    ids = env.cmd.body_ids(body_names)
    # Rows v^T R = (R^T v)^T: each anchor's inverse rotation as one batched matmul.
    ref = torch.matmul(env.cmd.ref_body_pos_w.index_select(1, ids) - env.cmd.ref_anchor_pos_w[:, None],
                       quat_to_matrix(env.cmd.ref_anchor_quat_w))
    rob = torch.matmul(env.robot.body_pos_w.index_select(1, ids) - env.cmd.robot_anchor_pos_w[:, None],
                       robot_anchor_rot(env.cmd))
    return _exp_kernel((ref - rob).square().sum(-1).mean(-1), std)


def action_rate_l2(env) -> torch.Tensor:
    """Squared change of the action since the last step. (N,)"""
    return (env.action - env.prev_action).square().sum(-1)


def joint_pos_limits(env) -> torch.Tensor:
    """How far (rad, summed over joints) positions are outside the soft joint limits. (N,)"""
    q = env.robot.joint_pos
    below = (env.joint_soft_lower - q).clamp_min(0.0)
    above = (q - env.joint_soft_upper).clamp_min(0.0)
    return (below + above).sum(-1)


def undesired_contacts(env, threshold: float = 1.0, body_names=None) -> torch.Tensor:
    """Number of non-foot bodies pressing on something with more than `threshold` newtons. (N,)"""
    names = body_names if body_names is not None else env.undesired_contact_bodies
    force = env.robot.contact_forces.index_select(1, env.cmd.body_ids(names)).norm(dim=-1)
    return (force > threshold).sum(-1).to(force.dtype)


def anti_shake_ang_vel_l2(env, threshold: float = 1.5, body_names=ANTI_SHAKE_BODIES) -> torch.Tensor:
    """Squared angular speed above a dead zone (rad/s), mean over jitter-prone links. (N,)"""
    speed = env.robot.body_ang_vel_w.index_select(1, env.cmd.body_ids(body_names)).norm(dim=-1)
    return (speed - threshold).clamp_min(0.0).square().mean(-1)


def feet_acc_l2(env, body_names=FEET_BODIES) -> torch.Tensor:
    """Squared linear acceleration of the feet (finite difference over one control step). (N,)"""
    ids = env.cmd.body_ids(body_names)
    acc = (env.robot.body_lin_vel_w.index_select(1, ids) - env.prev_body_lin_vel_w.index_select(1, ids)) / env.step_dt
    return acc.square().sum(-1).sum(-1)
