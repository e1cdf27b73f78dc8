"""Per-frame reference arithmetic shared by training and deployment.

One implementation each of: resampling clips to the control rate (linear for positions and joints,
slerp for rotations), finite-difference velocities inside clips (central inside a clip, one-sided
at its ends, never across clips; angular velocity is the world-frame rotation vector of
q[next] * conj(q[prev]) per second), and the robot-independent tokenizer features (SMPL joints in
their root frame, VR points in the reference anchor frame). `MotionLib`, the env's
`ReferenceTable` and `sonic_ray.deploy.reference` all call these, so a deployed reference is
built the way training builds it. Ray-free; torch for the rotation math.

Shapes: S frames (all clips concatenated), C clips, P VR points.
"""

from __future__ import annotations

import numpy as np
import torch

from sonic_ray.utils.rotations import (
    quat_apply_cm,
    quat_apply_inverse,
    quat_conj,
    quat_mul_terms,
    quat_slerp,
    quat_to_axis_angle,
    quat_to_tan_norm,
)


# ---- resampling -------------------------------------------------------------------------------------
def control_rate_frames(frames: np.ndarray, fps: np.ndarray, control_fps: float) -> np.ndarray:
    """(C,) frames of each clip once resampled to control_fps (native frames, fps: (C,))."""
    duration = (np.asarray(frames, dtype=np.float64) - 1) / np.asarray(fps, dtype=np.float64)
    return np.floor(duration * control_fps + 1e-6).astype(np.int64) + 1


def resample_plan(
    frames: np.ndarray,
    fps: np.ndarray,
    control_fps: float,
    *,
    first: np.ndarray | None = None,
    count: np.ndarray | None = None,
    raw_start: np.ndarray | None = None,
):
    """Source indices/weights for control-rate samples of clips (vectorised).

    frames, fps: (C,) native frame counts and rates. Returns (out_frames (C,), i0 (S,), alpha (S,))
    with i0 a global index into the concatenated native frames (clip c's first native frame at
    raw_start[c], by default the clips back to back) and alpha in [0, 1]: sample s lies between
    native frames i0[s] and i0[s] + 1 (see `interpolate`). The samples are every control-rate frame
    of every clip, or with first / count (C,) the frames first[c] .. first[c] + count[c] - 1 of clip
    c (the same values as those samples of the whole clip: each sample's arithmetic is its own).
    """
    frames, fps = np.asarray(frames, dtype=np.int64), np.asarray(fps, dtype=np.float64)
    out_frames = control_rate_frames(frames, fps, control_fps)
    if raw_start is None:
        raw_start = np.concatenate(([0], np.cumsum(frames)[:-1]))
    count = out_frames if count is None else np.asarray(count, dtype=np.int64)
    out_start = np.concatenate(([0], np.cumsum(count)[:-1]))
    clip = np.repeat(np.arange(len(frames)), count)
    k = np.arange(count.sum()) - out_start[clip]
    if first is not None:
        k = k + np.asarray(first, dtype=np.int64)[clip]
    src = k / control_fps * fps[clip]
    i0 = np.minimum(np.floor(src + 1e-9).astype(np.int64), frames[clip] - 2)
    alpha = np.clip(src - i0, 0.0, 1.0)
    return out_frames, np.asarray(raw_start)[clip] + i0, alpha


def interpolate(a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor, *, quat: bool) -> torch.Tensor:
    """Between frames a and b (N, ...) at alpha (N,) in [0, 1]: slerp of (N, 4) wxyz quaternions
    when `quat`, else linear."""
    if quat:
        return quat_slerp(a, b, alpha)
    return torch.lerp(a, b, alpha.reshape(-1, *([1] * (a.dim() - 1))))


def resample_clip(x: np.ndarray, src_fps: float, dst_fps: float, *, quat: bool) -> np.ndarray:
    """One clip's (T, ...) frames at src_fps -> dst_fps (unchanged when the rates agree), as numpy
    in x's float dtype: `resample_plan` + `interpolate` for a single clip."""
    if abs(src_fps - dst_fps) < 1e-9:
        return x
    _, i0, alpha = resample_plan(np.array([x.shape[0]]), np.array([src_fps]), dst_fps)
    t = torch.as_tensor(x)
    return interpolate(t[i0], t[i0 + 1], torch.as_tensor(alpha, dtype=t.dtype), quat=quat).numpy()


# ---- velocities -------------------------------------------------------------------------------------
def finite_diff_index(clip_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """prev, next (S,) frame indices and span (S,) in frames for clip-local central differences."""
    clip_frames = np.asarray(clip_frames, dtype=np.int64)
    start = np.concatenate(([0], np.cumsum(clip_frames)[:-1]))
    clip = np.repeat(np.arange(len(clip_frames)), clip_frames)
    idx = np.arange(int(clip_frames.sum()))
    prev = np.maximum(idx - 1, start[clip])
    nxt = np.minimum(idx + 1, start[clip] + clip_frames[clip] - 1)
    return prev, nxt, nxt - prev


def _rate(span: np.ndarray, fps: float, like) -> np.ndarray | torch.Tensor:
    """(S,) fps / span (0 for a one-frame clip), in like's dtype and device."""
    rate = np.where(span > 0, fps / np.maximum(span, 1), 0.0)
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(rate, dtype=like.dtype, device=like.device)
    return rate.astype(like.dtype, copy=False)


def clip_velocity(x, clip_frames: np.ndarray, fps: float):
    """(S, ...) -> (S, ...) time derivative per second of positions or joint angles (numpy or torch)."""
    prev, nxt, span = finite_diff_index(clip_frames)
    if isinstance(x, torch.Tensor):
        prev, nxt = torch.as_tensor(prev, device=x.device), torch.as_tensor(nxt, device=x.device)
        return velocity_between(x.index_select(0, nxt), x.index_select(0, prev), span, fps)
    return velocity_between(x[nxt], x[prev], span, fps)


def velocity_between(x_next, x_prev, span: np.ndarray, fps: float):
    """(S, ...) the finite difference of `clip_velocity` from the frames after (x_next) and before
    (x_prev) each frame, `span` (S,) frames apart (what a caller holding the neighbours' rows
    computes, with the same arithmetic)."""
    rate = _rate(span, fps, x_next)
    return (x_next - x_prev) * rate.reshape(-1, *([1] * (x_next.ndim - 1)))


def clip_angular_velocity(quat_w: torch.Tensor, clip_frames: np.ndarray, fps: float) -> torch.Tensor:
    """(S, ..., 4) world-frame wxyz rotations -> (S, ..., 3) world-frame angular velocities."""
    prev, nxt, span = finite_diff_index(clip_frames)
    prev, nxt = torch.as_tensor(prev, device=quat_w.device), torch.as_tensor(nxt, device=quat_w.device)
    return angular_velocity_between(quat_w.index_select(0, nxt), quat_w.index_select(0, prev), span, fps)


def angular_velocity_between(q_next: torch.Tensor, q_prev: torch.Tensor, span: np.ndarray, fps: float):
    """(S, ..., 3) `clip_angular_velocity` of each frame from its neighbours' rotations (as
    `velocity_between`)."""
    rate = _rate(span, fps, q_next).reshape(-1, *([1] * (q_next.dim() - 1)))
    return quat_to_axis_angle(quat_mul_terms(q_next, quat_conj(q_prev))) * rate


# ---- tokenizer features -----------------------------------------------------------------------------
def smpl_joints_local(smpl_joints_w: torch.Tensor, root_quat_w: torch.Tensor) -> torch.Tensor:
    """(S,24,3) SMPL joints in their own root frame: pelvis joint at the origin, root rotation
    (S,4) removed."""
    # component-major (3, 24, S), where FK's points already are underneath (a view then): the
    # rotation as elementwise ops over all S x 24 vectors (`quat_apply_cm`), the same values as
    # quat_apply_inverse of the row-major arrays (358 frames 278 -> 141 us, one thread)
    v = smpl_joints_w.permute(2, 1, 0)
    rel = v - v[:, :1]
    return quat_apply_cm(quat_conj(root_quat_w).T.unsqueeze(1), rel).permute(2, 1, 0).contiguous()


def vr_local(
    anchor_pos_w: torch.Tensor, anchor_quat_w: torch.Tensor, vr_pos_w: torch.Tensor, vr_quat_w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """VR points' positions (S,P,3) and orientations (S,P,6, tangent-normal) in the anchor frame,
    from the anchor pose (S,3), (S,4) and the points' world poses (S,P,3), (S,P,4)."""
    aq = anchor_quat_w[:, None].expand_as(vr_quat_w)
    return (
        quat_apply_inverse(aq, vr_pos_w - anchor_pos_w[:, None]),
        quat_to_tan_norm(quat_mul_terms(quat_conj(aq), vr_quat_w)),
    )
