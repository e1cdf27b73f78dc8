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
  env.prev_joint_vel (N,J) (the previous step's joint velocities); env.joint_names (J,); env.step_dt;
  env.tracked_bodies (SONIC's tracked subset), env.undesired_contact_bodies,
  env.reward_point_ids (P,) long and env.reward_point_offsets (P,3) (RobotSpec.reward_points).

Body indices are the robot's bodies in RobotSpec order (pelvis first); `body_names=None` means the
robot's tracked bodies (RobotSpec.tracked_bodies). gear_sonic names: docs/MDP.md.
"""

from __future__ import annotations

import re

import torch

from sonic_ray.envs.command import robot_anchor_rot
from sonic_ray.utils.rotations import quat_apply, quat_error_angle, quat_to_matrix

# Small links that jitter. gear_sonic lists the wrists and "head_link", but head_link is not among
# its tracked bodies and its body lookup drops names it does not track: the term sees the wrists.
ANTI_SHAKE_BODIES = ("left_wrist_yaw_link", "right_wrist_yaw_link")


def _sel(x: torch.Tensor, env, body_names) -> torch.Tensor:
    """Bodies of (N,B,·) selected by name (the robot's tracked bodies when None)."""
    return x.index_select(1, env.cmd.body_ids(env.tracked_bodies if body_names is None else body_names))


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
    ang = quat_error_angle(
        _sel(env.cmd.ref_body_quat_rel_w, env, body_names), _sel(env.robot.body_quat_w, env, body_names)
    )
    return _exp_kernel(ang.square().mean(-1), std)


def motion_global_body_linear_velocity_error_exp(env, std: float, body_names=None) -> torch.Tensor:
    """Body linear velocities (world) against the reference's. (N,)"""
    diff = _sel(env.cmd.ref_body_lin_vel_w, env, body_names) - _sel(env.robot.body_lin_vel_w, env, body_names)
    return _exp_kernel(diff.square().sum(-1).mean(-1), std)


def motion_global_body_angular_velocity_error_exp(env, std: float, body_names=None) -> torch.Tensor:
    """Body angular velocities (world) against the reference's. (N,)"""
    diff = _sel(env.cmd.ref_body_ang_vel_w, env, body_names) - _sel(env.robot.body_ang_vel_w, env, body_names)
    return _exp_kernel(diff.square().sum(-1).mean(-1), std)


def _points_w(
    pos_w: torch.Tensor, quat_w: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """(N,P,3) points fixed to bodies `ids` (P,) at body-frame `offsets` (P,3), from (N,B,3|4) poses."""
    q = quat_w.index_select(1, ids)
    return pos_w.index_select(1, ids) + quat_apply(q, offsets.to(q.dtype).expand(q.shape[0], -1, -1))


def vr_5point_local_error_exp(env, std: float) -> torch.Tensor:
    """SONIC's local point reward (tracking_local_vr_5point_error) over the robot's reward points
    (G1: head point 0.5 m above the torso, both wrists), each set in its own anchor's frame: the
    reference's points relative to the reference anchor against the robot's relative to the robot
    anchor. Invariant to where the robot stands and faces, so it keeps shaping after drift. (N,)"""
    ids, off = env.reward_point_ids, env.reward_point_offsets
    ref_pts = _points_w(env.cmd.ref_body_pos_w, env.cmd.ref_body_quat_w, ids, off)
    rob_pts = _points_w(env.robot.body_pos_w, env.robot.body_quat_w, ids, off)
    # Rows v^T R = (R^T v)^T: each anchor's inverse rotation as one batched matmul.
    ref = torch.matmul(ref_pts - env.cmd.ref_anchor_pos_w[:, None], quat_to_matrix(env.cmd.ref_anchor_quat_w))
    rob = torch.matmul(rob_pts - env.cmd.robot_anchor_pos_w[:, None], robot_anchor_rot(env.cmd))
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
    """Number of bodies other than the feet, wrists and elbows (RobotSpec.undesired_contact_bodies)
    pressing on something with more than `threshold` newtons at the last physics substep. (N,)"""
    names = body_names if body_names is not None else env.undesired_contact_bodies
    force = env.robot.contact_forces.index_select(1, env.cmd.body_ids(names)).norm(dim=-1)
    return (force > threshold).sum(-1).to(force.dtype)


def anti_shake_ang_vel_l2(env, threshold: float = 1.5, body_names=ANTI_SHAKE_BODIES) -> torch.Tensor:
    """Squared angular speed above a dead zone (rad/s), mean over jitter-prone links. (N,)"""
    speed = env.robot.body_ang_vel_w.index_select(1, env.cmd.body_ids(body_names)).norm(dim=-1)
    return (speed - threshold).clamp_min(0.0).square().mean(-1)


def _joint_ids(env, pattern: str) -> torch.Tensor:
    cache = env.__dict__.setdefault("_joint_pattern_ids", {})
    ids = cache.get(pattern)
    if ids is None:
        ids = [i for i, n in enumerate(env.joint_names) if re.fullmatch(pattern, n)]
        if not ids:
            raise KeyError(f"joint pattern {pattern!r} matches none of {list(env.joint_names)}")
        ids = cache[pattern] = torch.tensor(ids, dtype=torch.long, device=env.robot.joint_vel.device)
    return ids


def joint_acc_l2(env, joint_pattern: str = ".*ankle.*") -> torch.Tensor:
    """Sum of squared accelerations (rad/s^2) of the joints whose names match `joint_pattern`
    (SONIC's feet_acc: the four ankle joints), the change of joint velocity over one control
    step. (N,)"""
    ids = _joint_ids(env, joint_pattern)
    acc = (env.robot.joint_vel.index_select(1, ids) - env.prev_joint_vel.index_select(1, ids)) / env.step_dt
    return acc.square().sum(-1)
