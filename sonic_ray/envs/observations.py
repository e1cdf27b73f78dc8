"""Observation terms: one function per term, `(env, **params) -> (N, k)`, named as in
configs/env/observations. Reads the attributes listed in rewards.py, plus env.default_joint_pos
(J,) and the reference's future frames `env.cmd.future(key, horizon)` -> (N, F, ...), where
horizon "g1" is num_future_frames at future_dt and "smpl" is smpl_num_future_frames at smpl_future_dt.

Orientations are given as the first two rotation-matrix columns (6 numbers, continuous).
`_b` means in the robot anchor's frame unless said otherwise.
"""

from __future__ import annotations

import torch

from sonic_ray.utils.rotations import quat_apply, quat_apply_inverse, quat_conj, quat_mul, quat_to_tan_norm


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _rel_quat(frame_quat: torch.Tensor, quat: torch.Tensor, frame_conj: torch.Tensor | None = None) -> torch.Tensor:
    """quat expressed in frame_quat's frame; frame_quat (N,4), quat (N,...,4). frame_conj: the
    conjugate of frame_quat when already at hand (broadcast, never expanded)."""
    conj = quat_conj(frame_quat) if frame_conj is None else frame_conj
    return quat_mul(conj.reshape(conj.shape[0], *([1] * (quat.dim() - 2)), 4), quat)


def _anchor_conj(cmd) -> torch.Tensor:
    """(N,4) inverse robot anchor orientation: MotionCommand computes it once per step; any other
    object with robot_anchor_quat_w (tests' stand-ins) gets it computed here."""
    conj = getattr(cmd, "robot_anchor_quat_conj", None)
    return quat_conj(cmd.robot_anchor_quat_w) if conj is None else conj


def _anchor_rel_tan_norm(env, quat: torch.Tensor) -> torch.Tensor:
    """quat (N,...,4) in the robot anchor frame, as the 6-D encoding (N,...,6)."""
    return quat_to_tan_norm(_rel_quat(env.cmd.robot_anchor_quat_w, quat, _anchor_conj(env.cmd)))


# ---- proprioception ---------------------------------------------------------------------------
def projected_gravity(env) -> torch.Tensor:
    """Gravity direction in the root (pelvis) frame. (N, 3)"""
    q = env.robot.root_quat_w
    down = torch.zeros(q.shape[0], 3, dtype=q.dtype, device=q.device)
    down[:, 2] = -1.0
    return quat_apply_inverse(q, down)


def base_lin_vel(env) -> torch.Tensor:
    """Root linear velocity in the root frame. (N, 3)"""
    return quat_apply_inverse(env.robot.root_quat_w, env.robot.root_lin_vel_w)


def base_ang_vel(env) -> torch.Tensor:
    """Root angular velocity in the root frame (what the IMU gyro reads). (N, 3)"""
    return quat_apply_inverse(env.robot.root_quat_w, env.robot.root_ang_vel_w)


def joint_pos_rel(env) -> torch.Tensor:
    """Joint positions minus the nominal default pose. (N, J)"""
    return env.robot.joint_pos - env.default_joint_pos


def joint_vel_rel(env) -> torch.Tensor:
    """Joint velocities (the default pose is at rest). (N, J)"""
    return env.robot.joint_vel


def last_action(env) -> torch.Tensor:
    """The action applied this step. (N, A)"""
    return env.action


# ---- privileged (critic) ----------------------------------------------------------------------
def motion_anchor_pos_b(env) -> torch.Tensor:
    """Reference anchor position in the robot anchor frame. (N, 3)"""
    c = env.cmd
    return quat_apply(_anchor_conj(c), c.ref_anchor_pos_w - c.robot_anchor_pos_w)


def motion_anchor_ori_b(env) -> torch.Tensor:
    """Reference anchor orientation in the robot anchor frame. (N, 6)"""
    return _anchor_rel_tan_norm(env, env.cmd.ref_anchor_quat_w)


def robot_body_pos_b(env) -> torch.Tensor:
    """Every robot body's position in the robot anchor frame. (N, B*3)"""
    c = env.cmd
    rel = env.robot.body_pos_w - c.robot_anchor_pos_w[:, None]
    return _flat(quat_apply(_anchor_conj(c)[:, None], rel))


def robot_body_ori_b(env) -> torch.Tensor:
    """Every robot body's orientation in the robot anchor frame. (N, B*6)"""
    return _flat(_anchor_rel_tan_norm(env, env.robot.body_quat_w))


def command_multi_future(env) -> torch.Tensor:
    """Reference joint positions and velocities at the F future frames. (N, F*2J)"""
    jp, jv = env.cmd.future("joint_pos", "g1"), env.cmd.future("joint_vel", "g1")
    return _flat(torch.cat((jp, jv), dim=-1))


def motion_anchor_ori_b_multi_future(env) -> torch.Tensor:
    """Reference anchor orientation at the F future frames, in the robot anchor frame. (N, F*6)"""
    return _flat(_anchor_rel_tan_norm(env, env.cmd.future("anchor_quat_w", "g1")))


# ---- SMPL encoder -----------------------------------------------------------------------------
def smpl_joints_multi_future(env) -> torch.Tensor:
    """The 24 SMPL joints at the Fs future frames, each frame in its own root frame (pelvis joint
    at the origin, root rotation removed): the body pose a human source provides, independent of
    where it stands (precomputed per frame by the ReferenceTable). (N, Fs*24*3)"""
    return _flat(env.cmd.future("smpl_joints_local", "smpl"))


def smpl_root_ori_b_multi_future(env) -> torch.Tensor:
    """Reference root orientation at the Fs future frames, in the robot anchor frame. (N, Fs*6)"""
    return _flat(_anchor_rel_tan_norm(env, env.cmd.future("root_quat_w", "smpl")))


# ---- teleop encoder ---------------------------------------------------------------------------
def command_lower_body(env) -> torch.Tensor:
    """Reference leg joint positions and velocities at the F future frames. (N, F*2*J_legs)"""
    ids = env.cmd.lower_body_joint_ids
    jp, jv = env.cmd.future("joint_pos", "g1")[..., ids], env.cmd.future("joint_vel", "g1")[..., ids]
    return _flat(torch.cat((jp, jv), dim=-1))


def vr_3point_pos_local(env) -> torch.Tensor:
    """Reference head and hand points in the reference anchor frame (what a VR rig measures
    relative to the body). (N, 9)"""
    return _flat(env.cmd.ref_vr_pos_local)


def vr_3point_ori_local(env) -> torch.Tensor:
    """Orientations of the head and hand points' bodies in the reference anchor frame. (N, 18)"""
    return _flat(env.cmd.ref_vr_ori_local)
