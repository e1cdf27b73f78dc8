"""Observation terms: one function per term, `(env, **params) -> (N, k)`, named as in
configs/env/observations. Reads the attributes listed in rewards.py, plus env.default_joint_pos
(J,), env.joint_offsets (N,J) and the reference's future frames `env.cmd.future(key, horizon)`
-> (N, F, ...), where horizon "g1" is num_future_frames at future_dt and "smpl" is
smpl_num_future_frames at smpl_future_dt.

Orientations are given as the first two rotation-matrix columns (6 numbers, continuous).
`_b` means in the robot anchor's frame unless said otherwise.
"""

from __future__ import annotations

import torch

from sonic_ray.envs.command import robot_anchor_rot
from sonic_ray.utils.rotations import quat_apply_inverse, quat_to_tan_norm


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _anchor_rel_tan_norm(env, quat: torch.Tensor) -> torch.Tensor:
    """quat (N,...,4) in the robot anchor frame, as the 6-D encoding (N,...,6): the two columns
    c of quat's matrix become R_anchor^T c, one batched matmul of rows (c^T R_anchor) instead of a
    quaternion product per entry (equal to tan_norm(conj(anchor) * quat) within float32 rounding)."""
    n = quat.shape[0]
    cols = quat_to_tan_norm(quat).reshape(n, -1, 3)  # (N, 2*K, 3): every column a row
    return torch.bmm(cols, robot_anchor_rot(env.cmd)).reshape(*quat.shape[:-1], 6)


def _to_anchor_frame(env, vec: torch.Tensor) -> torch.Tensor:
    """World vectors (N,K,3) rotated into the robot anchor frame: rows v^T R_anchor = (R^T v)^T."""
    return torch.bmm(vec, robot_anchor_rot(env.cmd))


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
    """Joint positions minus the default pose the actions are centred on, which includes the
    default_joint_offsets event's calibration error (gear_sonic/Isaac Lab shift both together, so
    the offset reads as an encoder error). (N, J)"""
    return env.robot.joint_pos - env.default_joint_pos - env.joint_offsets


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
    return _to_anchor_frame(env, (c.ref_anchor_pos_w - c.robot_anchor_pos_w)[:, None]).squeeze(1)


def motion_anchor_ori_b(env) -> torch.Tensor:
    """Reference anchor orientation in the robot anchor frame. (N, 6)"""
    return _anchor_rel_tan_norm(env, env.cmd.ref_anchor_quat_w)


def robot_body_pos_b(env) -> torch.Tensor:
    """Every robot body's position in the robot anchor frame. (N, B*3)"""
    c = env.cmd
    rel = env.robot.body_pos_w - c.robot_anchor_pos_w[:, None]
    return _flat(_to_anchor_frame(env, rel))


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
    jp, jv = (
        env.cmd.future("joint_pos", "g1").index_select(-1, ids),
        env.cmd.future("joint_vel", "g1").index_select(-1, ids),
    )
    return _flat(torch.cat((jp, jv), dim=-1))


def vr_3point_pos_local(env) -> torch.Tensor:
    """Reference head and hand points in the reference anchor frame (what a VR rig measures
    relative to the body). (N, 9)"""
    return _flat(env.cmd.ref_vr_pos_local)


def vr_3point_ori_local(env) -> torch.Tensor:
    """Orientations of the head and hand points' bodies in the reference anchor frame. (N, 18)"""
    return _flat(env.cmd.ref_vr_ori_local)
