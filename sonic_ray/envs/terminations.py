"""Termination terms: one function per term, `(env, **params) -> (N,) bool`, named as in
configs/env/terminations. Whether a term is a failure (terminated) or a time-out (truncated,
bootstraps) is the config's `time_out` flag, not the function's business.

Reads the same `env` attributes as rewards.py, plus env.episode_length (N,) long,
env.max_episode_length (int), env.cmd.frame / env.cmd.last_frame (N,) long and
env.cmd.ref_root_height_ema (N,) (see below).

Adaptive thresholds (`adaptive=True`), gear_sonic's rule (exceeded_anchor_height /
exceeded_body_height with threshold_adaptive): an env whose reference is low (a running average
of the reference anchor's height below `root_height_threshold`: crouching, sitting, lying) is
checked against the looser `down_threshold`; every other env against `threshold`. The running
average is MotionCommand.ref_root_height_ema (EMA with weight 0.1 per step, restarted at reset).
"""

from __future__ import annotations

import torch

from sonic_ray.utils.rotations import quat_error_angle


def _threshold(
    env, threshold: float, adaptive: bool, down_threshold: float, root_height_threshold: float
) -> torch.Tensor | float:
    """Scalar, or (N,1) per-env thresholds when adaptive."""
    if not adaptive:
        return threshold
    low = env.cmd.ref_root_height_ema < root_height_threshold
    return torch.where(low, down_threshold, threshold)[:, None]


def time_out(env) -> torch.Tensor:
    """The episode reached its length budget (env.episode_length_s)."""
    return env.episode_length >= env.max_episode_length


def motion_clip_end(env) -> torch.Tensor:
    """The reference frame just tracked is the clip's last one: nothing left to follow."""
    return env.cmd.frame >= env.cmd.last_frame


def anchor_pos(
    env,
    threshold: float,
    adaptive: bool = False,
    down_threshold: float = 0.5,
    root_height_threshold: float = 1.0,
) -> torch.Tensor:
    """Anchor height too far from the reference anchor's (gear_sonic exceeded_anchor_height): the
    xy position drifts harmlessly and is tracked by reward, not termination."""
    err = (env.cmd.ref_anchor_pos_w[:, 2] - env.cmd.robot_anchor_pos_w[:, 2]).abs()[:, None]
    return (err > _threshold(env, threshold, adaptive, down_threshold, root_height_threshold))[:, 0]


def ee_body_pos(
    env,
    threshold: float,
    adaptive: bool = False,
    down_threshold: float = 0.5,
    root_height_threshold: float = 0.5,
    body_names=None,
) -> torch.Tensor:
    """Any end effector (ankles, wrists) whose height is too far from its re-anchored reference's
    (gear_sonic exceeded_body_height)."""
    ids = env.cmd.body_ids(body_names if body_names is not None else env.end_effector_bodies)
    ref_z = env.cmd.ref_body_pos_rel_w.index_select(1, ids)[..., 2]
    err = (ref_z - env.robot.body_pos_w.index_select(1, ids)[..., 2]).abs()
    return (err > _threshold(env, threshold, adaptive, down_threshold, root_height_threshold)).any(dim=-1)


def anchor_ori(env, threshold: float) -> torch.Tensor:
    """Anchor orientation too far from the reference's, heading included (gear_sonic
    exceeded_anchor_ori): the squared rotation angle (rad^2) between the two anchors against
    `threshold` (0.2 rad^2 = 0.447 rad in training, 1 rad^2 in evaluation)."""
    return quat_error_angle(env.cmd.ref_anchor_quat_w, env.cmd.robot_anchor_quat_w).square() > threshold


def foot_pos(env, threshold: float, body_names=None) -> torch.Tensor:
    """Any foot farther than `threshold` (m, xyz) from its re-anchored reference (gear_sonic
    exceeded_body_pos on the ankles, foot_pos_xyz)."""
    ids = env.cmd.body_ids(body_names if body_names is not None else env.feet_bodies)
    err = (env.cmd.ref_body_pos_rel_w.index_select(1, ids) - env.robot.body_pos_w.index_select(1, ids)).norm(
        dim=-1
    )
    return (err > threshold).any(dim=-1)
