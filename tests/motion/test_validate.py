import numpy as np
import pytest
from motion_builders import G1_JOINTS, G1_LOWER, G1_UPPER, make_clip, toy_fk

from sonic_ray.motion.validate import ClipRejected, validate_clip


def _reject(clip, field, match, **kw):
    with pytest.raises(ClipRejected, match=match) as e:
        validate_clip(clip, joint_names=G1_JOINTS, **kw)
    assert e.value.field == field and e.value.source == clip.source
    return e.value


def test_clean_clip_passes_unchanged():
    clip = make_clip()
    ref = clip.joint_pos.copy()
    validate_clip(clip, joint_names=G1_JOINTS, lower=G1_LOWER, upper=G1_UPPER)
    assert clip.warnings == [] and clip.fk_max_err_m is None
    np.testing.assert_array_equal(clip.joint_pos, ref)


def test_non_finite_is_rejected_with_frame():
    clip = make_clip()
    clip.joint_pos[7, 3] = np.nan
    _reject(clip, "joint_pos", "non-finite value \\(first at frame 7\\)")


def test_joint_count_fps_and_length():
    clip = make_clip()
    clip.joint_pos = clip.joint_pos[:, :23]
    _reject(clip, "joint_pos", r"shape \(40, 23\), expected \(T=40, 29\)")
    _reject(make_clip(fps=5.0), "fps", "outside the plausible range")
    _reject(make_clip(frames=1), "frames", "need at least 2")
    _reject(make_clip(frames=100, fps=10.0), "frames", "more than", max_duration_s=5.0)


def test_quaternion_drift_is_renormalised_large_is_rejected():
    clip = make_clip()
    clip.root_quat *= 1.002
    validate_clip(clip, joint_names=G1_JOINTS)
    np.testing.assert_allclose(np.linalg.norm(clip.root_quat, axis=1), 1.0, atol=1e-6)
    assert any("renormalised" in w for w in clip.warnings)
    clip = make_clip()
    clip.root_quat[5] = [1.0, 0.5, 0.0, 0.0]
    _reject(clip, "root_quat", "not a unit quaternion: .* at frame 5")


def test_quaternion_signs_made_continuous():
    clip = make_clip()
    clip.root_quat[10:20] *= -1
    validate_clip(clip, joint_names=G1_JOINTS)
    assert ((clip.root_quat[1:] * clip.root_quat[:-1]).sum(-1) > 0).all()


def test_joint_limit_fraction_warns_above_threshold():
    clip = make_clip(frames=100)
    clip.joint_pos[:5, 3] = 3.0  # 5 % of frames past the knee limit
    validate_clip(clip, joint_names=G1_JOINTS, lower=G1_LOWER, upper=G1_UPPER, limit_warn_frac=0.01)
    assert clip.warnings == ["joint_pos: 5.0% of frames outside joint limits (most often left_knee_joint)"]
    quiet = make_clip(frames=100)
    quiet.joint_pos[:5, 3] = 3.0
    validate_clip(quiet, joint_names=G1_JOINTS, lower=G1_LOWER, upper=G1_UPPER, limit_warn_frac=0.10)
    assert quiet.warnings == []


def test_fk_check_measures_error_and_rejects_wrong_joint_order():
    clip = make_clip()
    clip.body_pos_w = toy_fk(clip.root_pos, clip.root_quat, clip.joint_pos)
    clip.body_pos_w[:, 2, 2] += 0.03  # one body 3 cm off
    validate_clip(clip, joint_names=G1_JOINTS, fk=toy_fk)
    assert clip.fk_max_err_m == pytest.approx(0.03, abs=1e-5)
    assert clip.warnings == ["body_pos_w: FK max error 0.030 m"]
    swapped = make_clip()
    swapped.body_pos_w = toy_fk(swapped.root_pos, swapped.root_quat, swapped.joint_pos)
    swapped.joint_pos = swapped.joint_pos[:, ::-1].copy()
    _reject(swapped, "body_pos_w", "wrong joint order", fk=toy_fk)
