"""Kinematic building blocks for the synthetic clips: smooth profiles, footsteps, pelvis sway.

Why kinematic design and not a walking controller: the clips are tracking references, so what
matters is that they are smooth, reachable and physically sensible (feet planted while loaded,
pelvis over the stance foot before a foot lifts, no impact at touchdown). Every profile here
starts and ends at rest (minimum-jerk or cosine), which keeps the IK warm start valid frame to
frame and the reference velocities finite.

Arrays are over the clip's T frames; feet are indexed 0 = left, 1 = right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

SWING_LIFT_WINDOW = (0.2, 0.8)  # horizontal swing motion happens only in this part of the swing


def min_jerk(s: np.ndarray) -> np.ndarray:
    """0 -> 1 with zero velocity and acceleration at both ends (s clipped to [0, 1])."""
    s = np.clip(s, 0.0, 1.0)
    return s * s * s * (10.0 - 15.0 * s + 6.0 * s * s)


def ramp(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Minimum-jerk 0 -> 1 between times t0 and t1 (0 before, 1 after)."""
    return min_jerk((t - t0) / max(t1 - t0, 1e-9))


def bump(s: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 over s in [0, 1] with zero velocity and acceleration at both ends."""
    s = np.clip(s, 0.0, 1.0)
    return 64.0 * s**3 * (1.0 - s) ** 3


def envelope(t: np.ndarray, t_in: float, t_out: float, fade: float) -> np.ndarray:
    """1 between t_in and t_out, fading in and out over `fade` seconds (for oscillations)."""
    return ramp(t, t_in, t_in + fade) * (1.0 - ramp(t, t_out - fade, t_out))


def keyframes(t: np.ndarray, times, values) -> np.ndarray:
    """Piecewise minimum-jerk interpolation through (time, value) keys; values may be vectors.

    Each segment eases in and out, so the curve rests at every key: a sequence of poses held
    and blended, like hand-keyed animation.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if np.any(np.diff(times) < 0):
        raise ValueError(f"keyframes: times must not decrease, got {times.tolist()}")
    out = np.empty((len(t),) + values.shape[1:])
    out[...] = values[0]
    for k in range(1, len(times)):
        a = ramp(t, times[k - 1], times[k])
        seg = t > times[k - 1]
        out[seg] = values[k - 1] + a[seg].reshape((-1,) + (1,) * (values.ndim - 1)) * (
            values[k] - values[k - 1]
        )
    return out


@dataclass(frozen=True)
class Step:
    """One swing of one foot: `foot` (0 left, 1 right) leaves at t0 and lands at t1 on (x, y, yaw)."""

    foot: int
    t0: float
    t1: float
    x: float
    y: float
    yaw: float


def stance_pose(x: float, y: float, yaw: float, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """(2, 3) foot (x, y, yaw) for both feet around a body point, side by side at that heading."""
    side = np.array([-np.sin(yaw), np.cos(yaw)])
    feet = np.stack([[x, y] + half_width * side, [x, y] - half_width * side])
    return feet, np.array([yaw, yaw])


def foot_tracks(
    t: np.ndarray, start_xy: np.ndarray, start_yaw: np.ndarray, steps: list[Step], *, lift: float
) -> tuple[np.ndarray, np.ndarray]:
    """Foot trajectories: xy (2, T, 3) with z the lift above the planted height, yaw (2, T).

    A foot stays exactly where it is between its swings. During a swing it rises and falls with
    a `bump` profile while its horizontal motion and yaw use a minimum-jerk profile squeezed
    into SWING_LIFT_WINDOW, so the sole is already clear of the floor when it starts to move
    sideways and has stopped moving sideways before it lands.
    """
    pos = np.zeros((2, len(t), 3))
    yaw = np.zeros((2, len(t)))
    for f in (0, 1):
        pos[f, :, :2] = start_xy[f]
        yaw[f] = start_yaw[f]
    planted_xy = np.array(start_xy, dtype=np.float64)
    planted_yaw = np.array(start_yaw, dtype=np.float64)
    lo, hi = SWING_LIFT_WINDOW
    for s in sorted(steps, key=lambda s: s.t0):
        f = s.foot
        if s.t1 <= s.t0:
            raise ValueError(f"foot_tracks: step of foot {f} lands at {s.t1} before it leaves at {s.t0}")
        tau = (t - s.t0) / (s.t1 - s.t0)
        after = t >= s.t0
        p0, y0 = planted_xy[f].copy(), planted_yaw[f]
        planted_xy[f] = (s.x, s.y)
        planted_yaw[f] = y0 + _wrap(s.yaw - y0)
        h = min_jerk((tau[after] - lo) / (hi - lo))
        pos[f, after, 0] = p0[0] + h * (s.x - p0[0])
        pos[f, after, 1] = p0[1] + h * (s.y - p0[1])
        pos[f, after, 2] = lift * bump(tau[after])
        yaw[f, after] = y0 + h * _wrap(s.yaw - y0)
    return pos, yaw


def support_weight(t: np.ndarray, steps: list[Step], *, shift: float) -> np.ndarray:
    """Share of the weight on the left foot (T,): 0.5 in double support, 1 or 0 in single support.

    The weight moves onto the stance foot during the `shift` seconds before each lift-off and
    back to the middle after touchdown; back-to-back steps hand it straight from one foot to the
    other during their double-support phase.
    """
    keys_t, keys_w = [0.0], [0.5]
    steps = sorted(steps, key=lambda s: s.t0)
    for i, s in enumerate(steps):
        stance_w = 0.0 if s.foot == 0 else 1.0
        if s.t0 - keys_t[-1] > shift:
            keys_t.append(max(s.t0 - shift, keys_t[-1]))
            keys_w.append(keys_w[-1])
        keys_t += [s.t0, s.t1]
        keys_w += [stance_w, stance_w]
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        if nxt is None or nxt.t0 - s.t1 > 2 * shift:
            keys_t.append(s.t1 + shift)
            keys_w.append(0.5)
    return keyframes(t, keys_t, keys_w)


def pelvis_over_feet(
    t: np.ndarray,
    foot_pos: np.ndarray,
    foot_yaw: np.ndarray,
    weight_left: np.ndarray,
    *,
    sway: float,
    fps: float,
    smooth_s: float = 0.08,
) -> tuple[np.ndarray, np.ndarray]:
    """Pelvis xy (T, 2) and yaw (T,) that follow the feet and lean over the loaded one.

    The base is the mid-point of the feet; `sway` in [0, 1] is how far the pelvis moves from it
    toward the foot that carries the weight (1 = right over it). The swing foot has zero weight
    while it moves, so the pelvis does not chase it. A light Gaussian smoothing removes the
    kinks where weight transfers meet.
    """
    mid = 0.5 * (foot_pos[0, :, :2] + foot_pos[1, :, :2])
    loaded = weight_left[:, None] * foot_pos[0, :, :2] + (1.0 - weight_left[:, None]) * foot_pos[1, :, :2]
    xy = mid + sway * (loaded - mid)
    yaw = foot_yaw[1] + 0.5 * _wrap(foot_yaw[0] - foot_yaw[1])
    sigma = smooth_s * fps
    if sigma > 0:
        xy = gaussian_filter1d(xy, sigma, axis=0, mode="nearest")
        yaw = gaussian_filter1d(yaw, sigma, mode="nearest")
    return xy, yaw


def _wrap(a):
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi
