"""Tracking metrics of one evaluated clip, and their summary over clips (SONIC / PHC definitions).

Pure numpy. Positions are world-frame body origins, time-aligned: row t of the robot array is the
robot at the instant the reference's frame t describes (see `sonic_ray.eval.runner`).

- `mpjpe_g_mm`: mean over frames and bodies of |robot - ref| (mm).
- `mpjpe_l_mm`: the same after subtracting each side's root (body 0, the pelvis) position; the
  root itself counts with error 0, as in PHC's `mpjpe_l` (translation removed, not rotation).
- `mpjpe_pa_mm`: per frame, the robot's bodies are aligned to the reference by the similarity
  transform (rotation, translation, uniform scale) that minimises the squared error (Procrustes /
  Kabsch-Umeyama with reflection removed, PHC's `p_mpjpe`), then the mean error (mm).
- `vel_err` (m/s), `acc_err` (m/s^2): mean over frames and bodies of the norm of the difference of
  finite-difference velocities (p[t+1] - p[t]) * fps and accelerations
  (p[t+1] - 2 p[t] + p[t-1]) * fps^2, global positions (PHC's `vel_dist` / `accel_dist`, in SI
  units instead of mm per frame). NaN when the clip has too few frames (2 / 3).
- `max_err_g_mm`: the largest, over frames, of the mean over bodies of |robot - ref| (mm), and
  `success_global`: success and that at most GLOBAL_FAIL_M (0.5 m), PHC's success criterion
  (ProtoMotions' too). SONIC's success (gear_sonic's eval callback) is "no eval termination", and its
  terminations check heights and orientation only, so a robot that stands still through a walk
  succeeds there (the demo policy did: `walk_forward` 0.95 m behind its reference); here it fails.
- `err_<group>_mm`: root-relative error (the `mpjpe_l` breakdown) over a body group: legs (hip,
  knee, ankle links), vr3 (the bodies carrying the teleop VR 3-point targets: torso and both
  wrist-yaw links on the G1), feet (ankle-roll links, also inside legs), upper_other (every other
  non-root body: waist, shoulders, elbows, wrist roll/pitch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sonic_ray.robots.g1 import G1

MM = 1000.0
GLOBAL_FAIL_M = 0.5  # PHC's failure distance: the bodies' mean distance from the reference, any frame
LEG_KEYWORDS = ("hip", "knee", "ankle")
FEET_KEYWORD = "ankle_roll"
# Bodies that carry the VR 3-point targets (head on the torso, hands on the wrist-yaw links).
VR3_BODIES = tuple(dict.fromkeys(p.body for p in G1.vr_points))
GROUPS = ("legs", "vr3", "upper_other", "feet")
ERROR_KEYS = (
    "mpjpe_g_mm",
    "mpjpe_l_mm",
    "mpjpe_pa_mm",
    "vel_err",
    "acc_err",
    *(f"err_{g}_mm" for g in GROUPS),
)
# The blind control's rows (eval.runner.BlindPolicy: g1 observations, the token zeroed): kept out of
# the headline summary, reported per encoder and as token_gain_completed.
BLIND = "blind"
# The headline keys of `summarize`, in report order (metrics.jsonl eval/*, the report table, the CLI).
SUMMARY_KEYS = (
    "success_rate",
    "success_rate_global",
    *ERROR_KEYS,
    "completed_mean",
    "mpjpe_l_mm_all",
    "num_clips",
    "token_gain_completed",
)


def body_groups(body_names: Sequence[str]) -> dict[str, np.ndarray]:
    """{group: (K,) body indices} from the body names (index 0 is the root, in no group)."""
    names = list(body_names)
    legs = [i for i, n in enumerate(names) if i > 0 and any(k in n for k in LEG_KEYWORDS)]
    vr3 = [i for i, n in enumerate(names) if i > 0 and n in VR3_BODIES]
    feet = [i for i, n in enumerate(names) if i > 0 and FEET_KEYWORD in n]
    other = [i for i in range(1, len(names)) if i not in legs and i not in vr3]
    return {
        k: np.asarray(v, dtype=np.int64)
        for k, v in (("legs", legs), ("vr3", vr3), ("upper_other", other), ("feet", feet))
    }


def procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`pred` (T,B,3) moved onto `target` (T,B,3) frame by frame by the best similarity transform.

    Per frame: centre both point sets, H = Xc^T Yc = U S V^T, R = V D U^T with D = diag(1, 1,
    sign det(V U^T)) (no reflections), scale s = tr(D S) / |Xc|^2, result s Xc R^T + mean(Y).
    """
    mu_x, mu_y = pred.mean(axis=1, keepdims=True), target.mean(axis=1, keepdims=True)
    x, y = pred - mu_x, target - mu_y
    h = np.einsum("tbi,tbj->tij", x, y)
    u, s, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, 1, 2)
    d = np.sign(np.linalg.det(v @ np.swapaxes(u, 1, 2)))
    d[d == 0] = 1.0
    diag = np.ones_like(s)
    diag[:, -1] = d
    r = v @ (diag[:, :, None] * np.swapaxes(u, 1, 2))
    var_x = (x * x).sum(axis=(1, 2))
    scale = np.where(var_x > 0, (s * diag).sum(axis=1) / np.maximum(var_x, 1e-30), 1.0)
    return scale[:, None, None] * np.einsum("tij,tbj->tbi", r, x) + mu_y


def _mean_norm(diff: np.ndarray) -> float:
    return float(np.linalg.norm(diff, axis=-1).mean()) if diff.size else math.nan


def clip_metrics(
    robot_body_pos_w: np.ndarray,
    ref_body_pos_w: np.ndarray,
    *,
    fps: float,
    failed: bool,
    body_names: Sequence[str],
    encoder: str = "g1",
) -> dict[str, float | str | bool]:
    """One clip's row: robot and reference body positions (T,B,3), metres, at `fps` frames/s.

    Returns success (not failed), success_global, the errors of the module docstring, num_frames
    (T), encoder.
    """
    rob = np.asarray(robot_body_pos_w, dtype=np.float64)
    ref = np.asarray(ref_body_pos_w, dtype=np.float64)
    if rob.shape != ref.shape or rob.ndim != 3 or rob.shape[-1] != 3:
        raise ValueError(
            f"clip_metrics: robot {rob.shape} and reference {ref.shape} positions must both be (T,B,3)"
        )
    if rob.shape[1] != len(body_names):
        raise ValueError(f"clip_metrics: {rob.shape[1]} bodies but {len(body_names)} body names")
    if fps <= 0:
        raise ValueError(f"clip_metrics: fps must be > 0, got {fps}")
    t = rob.shape[0]
    rob_l, ref_l = rob - rob[:, :1], ref - ref[:, :1]
    err = rob - ref
    worst = float(np.linalg.norm(err, axis=-1).mean(axis=1).max()) if t and rob.shape[1] else math.nan
    row: dict[str, float | str | bool] = {
        "success": not bool(failed),
        # a NaN distance (no frames or bodies) cannot show the robot stayed near: not a success
        "success_global": not bool(failed) and worst <= GLOBAL_FAIL_M,
        "max_err_g_mm": MM * worst,
        "mpjpe_g_mm": MM * _mean_norm(err),
        "mpjpe_l_mm": MM * _mean_norm(rob_l - ref_l),
        "mpjpe_pa_mm": MM * _mean_norm(procrustes_align(rob, ref) - ref) if t else math.nan,
        "vel_err": _mean_norm(np.diff(err, axis=0) * fps) if t >= 2 else math.nan,
        "acc_err": _mean_norm(np.diff(err, n=2, axis=0) * fps * fps) if t >= 3 else math.nan,
    }
    for group, ids in body_groups(body_names).items():
        row[f"err_{group}_mm"] = MM * _mean_norm(rob_l[:, ids] - ref_l[:, ids]) if len(ids) else math.nan
    row["num_frames"] = int(t)
    row["encoder"] = str(encoder)
    return row


def _nanmean(values: list[float]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else None


def _summary(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["success"]]
    out: dict = {"success_rate": float(np.mean([bool(r["success"]) for r in rows])) if rows else None}
    # rows written before success_global existed (an older clips.parquet re-summarised) have none
    known = [bool(r["success_global"]) for r in rows if r.get("success_global") is not None]
    out["success_rate_global"] = float(np.mean(known)) if rows and len(known) == len(rows) else None
    for key in ERROR_KEYS:
        out[key] = _nanmean([r.get(key) for r in ok])
    # Early in training every clip fails; these two still move: how much of each clip was tracked
    # (rows from the runner carry `completed`) and the local error over all clips up to their end.
    out["completed_mean"] = _nanmean([r.get("completed") for r in rows])
    out["mpjpe_l_mm_all"] = _nanmean([r.get("mpjpe_l_mm") for r in rows])
    out["num_clips"] = len(rows)
    out["num_success"] = len(ok)
    return out


def summarize(rows: list[dict]) -> dict:
    """metrics.json content from clip rows (`clip_metrics` outputs, possibly with extra keys).

    success_rate and success_rate_global (PHC's 0.5 m criterion as well) are over ALL rows; every
    error is the mean over SUCCESSFUL rows only (SONIC and PHC report tracking errors on the clips
    the policy completed; a fall's error mostly measures the fall), NaN errors skipped; None when
    no row qualifies. Over all rows also: completed_mean (mean fraction of each clip tracked) and
    mpjpe_l_mm_all. num_clips counts rows: a clip evaluated with two encoders counts once per encoder.
    per_encoder: the same, per encoder. Rows of the blind control (encoder "blind") are only in
    per_encoder, and with g1 rows give token_gain_completed: g1's completed_mean minus the blind control's
    (what the token adds; ~0 for a policy whose decoder ignores the motion).
    """
    enc = lambda r: str(r.get("encoder", "g1"))  # noqa: E731
    out = _summary([r for r in rows if enc(r) != BLIND])
    encoders = sorted({enc(r) for r in rows})
    out["per_encoder"] = {e: _summary([r for r in rows if enc(r) == e]) for e in encoders}
    g1, blind = out["per_encoder"].get("g1"), out["per_encoder"].get(BLIND)
    if g1 and blind and g1["completed_mean"] is not None and blind["completed_mean"] is not None:
        out["token_gain_completed"] = g1["completed_mean"] - blind["completed_mean"]
    return out
