"""Termination terms: one function per term, `(env, **params) -> (N,) bool`, named as in
configs/env/terminations. Whether a term is a failure (terminated) or a time-out (truncated,
bootstraps) is the config's `time_out` flag, not the function's business.

Reads the same `env` attributes as rewards.py, plus env.episode_length (N,) long,
env.max_episode_length (int) and env.cmd.frame / env.cmd.last_frame (N,) long.

Adaptive thresholds (`adaptive=True`): a fast reference leaves a tracker behind by roughly its
speed times a small lag, so a fixed threshold ends fast episodes for errors that are only lag.
The threshold grows to `threshold + lag_s * |reference velocity|` of the checked body (capped at
`max_scale * threshold`). This is our own rule, written down because SONIC's adaptive rule is not
in its public configs; with the reference at rest it is the plain threshold.
"""

from __future__ import annotations

import torch

from sonic_ray.envs.command import robot_anchor_rot
from sonic_ray.utils.rotations import quat_to_matrix


def _threshold(threshold: float, ref_lin_vel_w: torch.Tensor, adaptive: bool, lag_s: float,
               max_scale: float) -> torch.Tensor | float:
    """Scalar, or (N,·) when adaptive: grows with the reference speed (ref_lin_vel_w (N,·,3))."""
    if not adaptive:
        return threshold
    return (threshold + lag_s * ref_lin_vel_w.norm(dim=-1)).clamp(max=max_scale * threshold)


def time_out(env) -> torch.Tensor:
    """The episode reached its length budget (env.episode_length_s)."""
    return env.episode_length >= env.max_episode_length


def motion_clip_end(env) -> torch.Tensor:
    """The reference frame just tracked is the clip's last one: nothing left to follow."""
    return env.cmd.frame >= env.cmd.last_frame


def anchor_pos(env, threshold: float, adaptive: bool = False, z_only: bool = True, lag_s: float = 0.1,
               max_scale: float = 2.0) -> torch.Tensor:
    """Anchor (torso) too far from the reference anchor: height only by default (BeyondMimic),
    since the xy position drifts harmlessly and is tracked by reward, not termination."""
    diff = env.cmd.ref_anchor_pos_w - env.cmd.robot_anchor_pos_w
    err = diff[:, 2].abs() if z_only else diff.norm(dim=-1)
    anchor = env.cmd.anchor_index
    return err > _threshold(threshold, env.cmd.ref_body_lin_vel_w[:, anchor], adaptive, lag_s, max_scale)


def ee_body_pos(env, threshold: float, adaptive: bool = False, z_only: bool = True, body_names=None,
                lag_s: float = 0.1, max_scale: float = 2.0) -> torch.Tensor:
    """Any end effector (hands, feet) too far from its re-anchored reference (height by default)."""
    ids = env.cmd.body_ids(body_names if body_names is not None else env.end_effector_bodies)
    diff = env.cmd.ref_body_pos_rel_w.index_select(1, ids) - env.robot.body_pos_w.index_select(1, ids)
    err = diff[..., 2].abs() if z_only else diff.norm(dim=-1)
    limit = _threshold(threshold, env.cmd.ref_body_lin_vel_w.index_select(1, ids), adaptive, lag_s, max_scale)
    return (err > limit).any(dim=-1)


def anchor_ori(env, threshold: float) -> torch.Tensor:
    """Anchor tilted away from the reference: difference of the gravity direction's z component
    in each anchor's frame (1 - cos tilt), blind to heading."""
    # Gravity (0, 0, -1) in a frame R has z component -R[2, 2].
    ref_gz = quat_to_matrix(env.cmd.ref_anchor_quat_w)[:, 2, 2]
    rob_gz = robot_anchor_rot(env.cmd)[:, 2, 2]
    return (rob_gz - ref_gz).abs() > threshold


def foot_pos(env, threshold: float, body_names=None) -> torch.Tensor:
    """Any foot farther than `threshold` (m, xyz) from its re-anchored reference (SONIC)."""
    ids = env.cmd.body_ids(body_names if body_names is not None else env.feet_bodies)
    err = (env.cmd.ref_body_pos_rel_w.index_select(1, ids) - env.robot.body_pos_w.index_select(1, ids)).norm(dim=-1)
    return (err > threshold).any(dim=-1)
