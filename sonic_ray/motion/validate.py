"""Checks a clip must pass before it enters the store.

Hard failures (the clip would poison training: NaNs, wrong joint count, broken quaternions,
absurd rates, FK far from the file's own body positions) raise `ClipRejected` naming the file,
the field and why. Soft problems (small quaternion drift, frames past joint limits, modest FK
error) are repaired where that is safe and recorded in `clip.warnings`, which the store keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sonic_ray.motion.store import MotionClip

FkFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class ClipRejected(ValueError):
    """A clip (or a whole file) that cannot be imported: `source` path, `field`, `reason`."""

    def __init__(self, source: str, field: str, reason: str):
        super().__init__(f"{source}: {field}: {reason}")
        self.source = str(source)
        self.field = field
        self.reason = reason


def _numeric(source: str, key: str, value) -> np.ndarray:
    """`value` as an array of real numbers (ints, floats or bools), else ClipRejected naming `key`."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged nesting and the like
        raise ClipRejected(source, key, f"not an array of numbers ({e})") from None
    if not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool
    ):
        raise ClipRejected(source, key, f"dtype {arr.dtype}, expected real numbers")
    return arr


def _check_shape(clip: MotionClip, key: str, trailing: tuple[int, ...]) -> np.ndarray:
    arr = _numeric(clip.source, key, getattr(clip, key))
    t = clip.root_pos.shape[0] if clip.root_pos.ndim else -1
    if arr.ndim != 1 + len(trailing) or arr.shape[1:] != trailing or arr.shape[0] != t:
        raise ClipRejected(
            clip.source, key, f"shape {arr.shape}, expected (T={t}, {', '.join(map(str, trailing))})"
        )
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr.reshape(t, -1))).any(axis=1).argmax())
        raise ClipRejected(clip.source, key, f"non-finite value (first at frame {bad})")
    return arr


def _quat_fix(clip: MotionClip, drift_tol: float, reject_tol: float) -> np.ndarray:
    """Normalise small drift, reject large, and make signs continuous (q and -q are one rotation)."""
    q = clip.root_quat.astype(np.float64)
    norm = np.linalg.norm(q, axis=-1)
    dev = np.abs(norm - 1.0)
    worst = float(dev.max())
    if worst > reject_tol:
        frame = int(dev.argmax())
        raise ClipRejected(
            clip.source, "root_quat", f"not a unit quaternion: |q| = {norm[frame]:.4f} at frame {frame}"
        )
    if worst > drift_tol:
        clip.warnings.append(f"root_quat: norms off by up to {worst:.2e}, renormalised")
    q = q / norm[:, None]
    flip = np.ones(len(q))
    flip[1:] = np.where((q[1:] * q[:-1]).sum(-1) < 0, -1.0, 1.0)
    return (q * np.cumprod(flip)[:, None]).astype(np.float32)


def _limit_warning(clip: MotionClip, joint_names, lower, upper, frac_warn: float, tol: float) -> None:
    lo = np.asarray(lower, dtype=np.float64) - tol
    hi = np.asarray(upper, dtype=np.float64) + tol
    outside = (clip.joint_pos < lo) | (clip.joint_pos > hi)  # (T, J)
    frac = float(outside.any(axis=1).mean())
    if frac > frac_warn:
        worst = int(outside.sum(axis=0).argmax())
        clip.warnings.append(
            f"joint_pos: {frac:.1%} of frames outside joint limits (most often {joint_names[worst]})"
        )


def _fk_check(clip: MotionClip, fk: FkFn, warn_m: float, reject_m: float | None) -> None:
    body = _numeric(clip.source, "body_pos_w", clip.body_pos_w).astype(np.float64)
    pred = np.asarray(fk(clip.root_pos, clip.root_quat, clip.joint_pos), dtype=np.float64)
    if pred.shape != body.shape:
        clip.warnings.append(f"body_pos_w: FK gives {pred.shape}, file has {body.shape}; FK check skipped")
        return
    err = float(np.linalg.norm(pred - body, axis=-1).max())
    clip.fk_max_err_m = err
    if reject_m is not None and err > reject_m:
        raise ClipRejected(
            clip.source,
            "body_pos_w",
            f"FK of root + joints is {err:.3f} m from the file's bodies (> {reject_m} m): "
            "wrong joint order or robot?",
        )
    if err > warn_m:
        clip.warnings.append(f"body_pos_w: FK max error {err:.3f} m")


def validate_clip(
    clip: MotionClip,
    *,
    joint_names: Sequence[str],
    lower: Sequence[float] | None = None,
    upper: Sequence[float] | None = None,
    fk: FkFn | None = None,
    fps_range: tuple[float, float] = (10.0, 1000.0),
    max_duration_s: float = 4 * 3600.0,
    quat_drift_tol: float = 1e-3,
    quat_reject_tol: float = 0.05,
    limit_tol: float = 0.01,
    limit_warn_frac: float = 0.01,
    fk_warn_m: float = 0.02,
    fk_reject_m: float | None = 0.10,
) -> MotionClip:
    """Check and tidy `clip` in place (float32, unit quats, warnings, fk_max_err_m); return it.

    fk(root_pos (T,3), root_quat (T,4) wxyz, joint_pos (T,J)) -> body_pos_w (T,B,3) is only
    called when the file carried body positions (clip.body_pos_w).
    """
    src = clip.source
    fps = float(clip.fps) if np.isscalar(clip.fps) or np.size(clip.fps) == 1 else float("nan")
    if not fps_range[0] <= fps <= fps_range[1]:
        raise ClipRejected(src, "fps", f"{clip.fps} outside the plausible range {fps_range}")
    clip.fps = fps
    clip.root_pos = _numeric(src, "root_pos", clip.root_pos)
    if clip.root_pos.ndim != 2:
        raise ClipRejected(src, "root_pos", f"shape {clip.root_pos.shape}, expected (T, 3)")
    j = len(joint_names)
    for key, trailing in (("root_pos", (3,)), ("root_quat", (4,)), ("joint_pos", (j,))):
        setattr(clip, key, _check_shape(clip, key, trailing).astype(np.float32))
    if clip.smpl_joints is not None:
        clip.smpl_joints = _check_shape(clip, "smpl_joints", (24, 3)).astype(np.float32)
    t = clip.num_frames
    if t < 2:
        raise ClipRejected(src, "frames", f"{t} frame(s), need at least 2")
    if clip.duration_s > max_duration_s:
        raise ClipRejected(src, "frames", f"{clip.duration_s:.0f} s long, more than {max_duration_s:.0f} s")
    clip.root_quat = _quat_fix(clip, quat_drift_tol, quat_reject_tol)
    if lower is not None and upper is not None:
        _limit_warning(clip, joint_names, lower, upper, limit_warn_frac, limit_tol)
    if clip.body_pos_w is not None and fk is not None:
        _fk_check(clip, fk, fk_warn_m, fk_reject_m)
    return clip
