"""Metric functions against hand-worked numbers (the arithmetic is in the comments)."""

import math

import numpy as np
import pytest

from sonic_ray.eval.metrics import body_groups, clip_metrics, procrustes_align, summarize
from sonic_ray.robots import G1

NAMES = G1.body_names  # 30 bodies, pelvis first


def _rot_z(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_x(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _pose(t=4, seed=0):
    return np.random.default_rng(seed).normal(size=(t, len(NAMES), 3))


def test_body_groups_of_the_g1():
    g = {k: [NAMES[i] for i in v] for k, v in body_groups(NAMES).items()}
    assert g["vr3"] == ["torso_link", "left_wrist_yaw_link", "right_wrist_yaw_link"]
    assert g["feet"] == ["left_ankle_roll_link", "right_ankle_roll_link"]
    assert len(g["legs"]) == 12 and all(any(k in n for k in ("hip", "knee", "ankle")) for n in g["legs"])
    # 30 bodies = pelvis + 12 legs + 3 vr3 + 14 others (waist yaw/roll, 2 x shoulder p/r/y, elbow, wrist r/p)
    assert len(g["upper_other"]) == 14 and "pelvis" not in sum(g.values(), [])
    assert {"waist_yaw_link", "left_elbow_link", "right_wrist_pitch_link"} <= set(g["upper_other"])


def test_one_foot_off_by_10cm():
    ref = _pose(t=3)
    rob = ref.copy()
    rob[:, NAMES.index("left_ankle_roll_link"), 0] += 0.1
    row = clip_metrics(rob, ref, fps=50.0, failed=False, body_names=NAMES)
    # one body of 30 off by 100 mm in every frame: 100 / 30
    assert row["mpjpe_g_mm"] == pytest.approx(100 / 30)
    assert row["mpjpe_l_mm"] == pytest.approx(100 / 30)  # the pelvis did not move
    assert row["err_feet_mm"] == pytest.approx(100 / 2)  # 1 of 2 feet
    assert row["err_legs_mm"] == pytest.approx(100 / 12)  # 1 of 12 leg bodies
    assert row["err_vr3_mm"] == 0 and row["err_upper_other_mm"] == 0
    assert row["vel_err"] == pytest.approx(0, abs=1e-9) and row["acc_err"] == pytest.approx(0, abs=1e-9)
    assert row["success"] is True and row["num_frames"] == 3 and row["encoder"] == "g1"


def test_whole_body_shift_is_global_error_only():
    ref = _pose()
    rob = ref + np.array([0.0, 0.3, 0.4])  # |(0, .3, .4)| = 0.5 m for every body
    row = clip_metrics(rob, ref, fps=50.0, failed=True, body_names=NAMES, encoder="smpl")
    assert row["mpjpe_g_mm"] == pytest.approx(500.0)
    assert row["mpjpe_l_mm"] == pytest.approx(0, abs=1e-9)  # root-relative: the shift cancels
    assert row["mpjpe_pa_mm"] == pytest.approx(0, abs=1e-6)
    assert row["success"] is False and row["encoder"] == "smpl"
    assert row["max_err_g_mm"] == pytest.approx(500.0) and row["success_global"] is False  # failed


def test_global_success_is_phc_s_half_metre_on_the_worst_frame():
    """A robot that stands while its reference walks away passes SONIC's terminations (heights and
    orientation) but not PHC's criterion: the bodies' mean distance at most 0.5 m in every frame."""
    ref = _pose(t=5)
    rob = ref.copy()
    rob[4] += np.array([0.0, 0.0, 0.49])  # last frame: every body 0.49 m off
    row = clip_metrics(rob, ref, fps=50.0, failed=False, body_names=NAMES)
    assert row["max_err_g_mm"] == pytest.approx(490.0) and row["success_global"] is True
    rob[4] += np.array([0.0, 0.0, 0.02])
    row = clip_metrics(rob, ref, fps=50.0, failed=False, body_names=NAMES)
    assert row["success"] is True and row["success_global"] is False
    s = summarize([row, clip_metrics(ref, ref, fps=50.0, failed=False, body_names=NAMES)])
    assert s["success_rate"] == 1.0 and s["success_rate_global"] == 0.5
    old = {k: v for k, v in row.items() if k != "success_global"}  # a row from before the key existed
    assert summarize([old])["success_rate_global"] is None and summarize([old])["success_rate"] == 1.0


def test_procrustes_removes_rotation_translation_and_scale():
    ref = _pose(t=5, seed=1)
    # robot = 1.3 * R ref + t, with R a 40 deg yaw then 25 deg roll: a similarity transform of the reference
    r = _rot_x(math.radians(25)) @ _rot_z(math.radians(40))
    rob = 1.3 * ref @ r.T + np.array([2.0, -1.0, 0.5])
    row = clip_metrics(rob, ref, fps=50.0, failed=False, body_names=NAMES)
    assert row["mpjpe_pa_mm"] == pytest.approx(0, abs=1e-6)
    assert row["mpjpe_g_mm"] > 100 and row["mpjpe_l_mm"] > 100  # the other errors see it all


def test_procrustes_stretch_hand_worked():
    # target Y: (±1,0,0), (0,±1,0); pred X: the same with y doubled. Centroids are 0.
    # H = X^T Y = sum x_i y_i^T = diag(1+1, 2+2, 0) -> R = I, S = {4, 2, 0}
    # s = tr(S) / |X|^2 = 6 / (1+1+4+4) = 0.6 -> aligned 0.6 X = (±.6,0,0), (0,±1.2,0)
    # errors .4, .4, .2, .2 -> mean 0.3 m
    y = np.array([[[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]]])
    x = y * np.array([1.0, 2.0, 1.0])
    aligned = procrustes_align(x, y)
    np.testing.assert_allclose(aligned[0], 0.6 * x[0], atol=1e-12)
    assert np.linalg.norm(aligned - y, axis=-1).mean() == pytest.approx(0.3)


def test_procrustes_never_reflects():
    y = np.random.default_rng(3).normal(size=(2, 6, 3))
    x = y * np.array([1.0, 1.0, -1.0])  # a mirror image: only a reflection would fit exactly
    err = np.linalg.norm(procrustes_align(x, y) - y, axis=-1).mean()
    assert err > 0.05


def test_velocity_and_acceleration_errors_hand_worked():
    fps, t = 10.0, 3
    ref = np.zeros((t, len(NAMES), 3))
    time = np.arange(t) / fps
    # robot drifts at a constant 2 m/s along x: velocity error 2, acceleration error 0
    rob = ref.copy()
    rob[..., 0] += 2.0 * time[:, None]
    row = clip_metrics(rob, ref, fps=fps, failed=False, body_names=NAMES)
    assert row["vel_err"] == pytest.approx(2.0) and row["acc_err"] == pytest.approx(0.0, abs=1e-9)
    # robot = ref + a t^2 / 2, a = 2: second difference (0 - 2*.01 + .04) * 100 = 2 exactly;
    # first differences (0.01 - 0) * 10 = 0.1 and (0.04 - 0.01) * 10 = 0.3 -> mean 0.2
    rob = ref.copy()
    rob[..., 0] += 0.5 * 2.0 * time[:, None] ** 2
    row = clip_metrics(rob, ref, fps=fps, failed=False, body_names=NAMES)
    assert row["acc_err"] == pytest.approx(2.0) and row["vel_err"] == pytest.approx(0.2)


def test_short_clips_give_nan_derivatives_and_bad_shapes_raise():
    ref = _pose(t=1)
    row = clip_metrics(ref, ref, fps=50.0, failed=True, body_names=NAMES)
    assert math.isnan(row["vel_err"]) and math.isnan(row["acc_err"]) and row["mpjpe_g_mm"] == 0
    with pytest.raises(ValueError, match=r"\(T,B,3\)"):
        clip_metrics(ref, ref[:, :5], fps=50.0, failed=False, body_names=NAMES)
    with pytest.raises(ValueError, match="body names"):
        clip_metrics(ref, ref, fps=50.0, failed=False, body_names=NAMES[:3])


def test_summarize_means_over_successful_clips_and_per_encoder():
    def row(ok, g, enc, vel=0.5):
        return {
            "success": ok,
            "mpjpe_g_mm": g,
            "mpjpe_l_mm": g / 2,
            "mpjpe_pa_mm": 1.0,
            "vel_err": vel,
            "acc_err": 2.0,
            "err_legs_mm": 1.0,
            "err_vr3_mm": 1.0,
            "err_upper_other_mm": 1.0,
            "err_feet_mm": 1.0,
            "num_frames": 10,
            "encoder": enc,
            "clip": "c",
        }

    rows = [
        row(True, 10.0, "g1"),
        row(True, 30.0, "g1", vel=math.nan),
        row(False, 500.0, "g1"),
        row(False, 90.0, "smpl"),
    ]
    s = summarize(rows)
    assert s["success_rate"] == pytest.approx(2 / 4) and s["num_clips"] == 4 and s["num_success"] == 2
    assert s["mpjpe_g_mm"] == pytest.approx(20.0)  # (10 + 30) / 2: the failed 500 and 90 are left out
    assert s["mpjpe_l_mm"] == pytest.approx(10.0)
    assert s["vel_err"] == pytest.approx(0.5)  # NaN skipped
    assert s["per_encoder"]["g1"]["success_rate"] == pytest.approx(2 / 3)
    assert s["per_encoder"]["g1"]["num_clips"] == 3
    assert s["per_encoder"]["smpl"] == {
        **s["per_encoder"]["smpl"],
        "success_rate": 0.0,
        "mpjpe_g_mm": None,
        "num_clips": 1,
    }
    assert s["mpjpe_l_mm_all"] == pytest.approx((5 + 15 + 250 + 45) / 4)  # every clip, failed ones too
    assert s["completed_mean"] is None  # clip_metrics rows alone carry no `completed`
    assert summarize([])["success_rate"] is None


def test_blind_control_rows_stay_out_of_the_headline_and_give_the_token_gain():
    def row(ok, completed, enc):
        return {"success": ok, "mpjpe_l_mm": 40.0, "completed": completed, "encoder": enc, "clip": "c"}

    rows = [row(True, 1.0, "g1"), row(False, 0.5, "g1"), row(True, 1.0, "blind"), row(False, 0.2, "blind")]
    s = summarize(rows)
    # headline: the two g1 rows only; the blind rows are a control, per encoder
    assert (s["num_clips"], s["success_rate"], s["completed_mean"]) == (2, 0.5, pytest.approx(0.75))
    assert s["per_encoder"]["blind"]["completed_mean"] == pytest.approx(0.6)
    assert s["token_gain_completed"] == pytest.approx(0.75 - 0.6)
    assert "token_gain_completed" not in summarize(rows[:2])  # no control run, no gain
