"""The synthetic default clips: determinism, joint limits, planted feet, and that they move.

Fast tests build short prefixes of two clips; the full set (every clip at full length) is
built once in a module fixture for the slow tests.
"""

import mujoco
import numpy as np
import pytest

from sonic_ray.motion.synth import SYNTH_CLIPS, SynthBuilder, clip_contact_stats, synth_all, synth_clip
from sonic_ray.motion.synth_clips import DESIGNS

MAX_PENETRATION_M = 0.005
MAX_STANCE_SLIP_MPS = 0.02
ROOT_Z_RANGE = (0.45, 0.85)


@pytest.fixture(scope="module")
def builder():
    return SynthBuilder("g1")


@pytest.fixture(scope="module")
def all_clips():
    return {c["name"]: c for c in synth_all(fps=50.0)}


def _check_clip(builder, clip):
    """Shapes, limits, feet and root height of one clip; returns the contact stats."""
    t = clip["root_pos"].shape[0]
    assert clip["root_pos"].shape == (t, 3) and clip["root_quat"].shape == (t, 4)
    assert clip["joint_pos"].shape == (t, builder.robot.num_joints)
    for key in ("root_pos", "root_quat", "joint_pos"):
        assert clip[key].dtype == np.float32 and np.all(np.isfinite(clip[key])), key
    np.testing.assert_allclose(np.linalg.norm(clip["root_quat"], axis=1), 1.0, atol=1e-5)
    tol = 1e-4  # float32 rounding of values sitting on a limit
    assert np.all(clip["joint_pos"] >= builder.robot.joint_lower - tol), clip["name"]
    assert np.all(clip["joint_pos"] <= builder.robot.joint_upper + tol), clip["name"]
    z = clip["root_pos"][:, 2]
    assert ROOT_Z_RANGE[0] < z.min() and z.max() < ROOT_Z_RANGE[1], (clip["name"], z.min(), z.max())
    stats = clip_contact_stats(builder.model, clip)
    assert stats["max_penetration_m"] < MAX_PENETRATION_M, (clip["name"], stats["max_penetration_m"])
    assert stats["max_stance_slip_mps"] < MAX_STANCE_SLIP_MPS, (clip["name"], stats["max_stance_slip_mps"])
    return stats


def _yaw(quat_wxyz):
    w, x, y, z = np.asarray(quat_wxyz, dtype=np.float64).T
    return np.unwrap(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


# ---- fast ------------------------------------------------------------------------------------
def test_clip_set_size_and_lengths():
    assert len(SYNTH_CLIPS) >= 12 and len(set(SYNTH_CLIPS)) == len(SYNTH_CLIPS)
    for name in SYNTH_CLIPS:
        assert 4.0 <= DESIGNS[name][0] <= 20.0, name


def test_short_clip_is_deterministic(builder):
    a = builder.clip("walk_forward", duration_s=2.0)
    b = synth_clip("walk_forward", duration_s=2.0)  # fresh model and solver
    for key in ("root_pos", "root_quat", "joint_pos"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["fps"] == 50.0 and a["root_pos"].shape[0] == 101 and a["name"] == "walk_forward"


def test_short_clips_keep_limits_and_planted_feet(builder):
    walk = builder.clip("walk_forward", duration_s=2.5)  # includes the first full swing
    stats = _check_clip(builder, walk)
    assert stats["sole_height"].max() > 0.03  # a swing foot lifted clear
    _check_clip(builder, builder.clip("wave_right", duration_s=3.0, fps=30.0))


def test_contact_stats_sees_penetration_and_slip(builder):
    clip = builder.clip("stand_idle", duration_s=1.0)
    base = clip_contact_stats(builder.model, clip)
    sunk = dict(clip, root_pos=clip["root_pos"] - np.array([0.0, 0.0, 0.02], dtype=np.float32))
    expected = max(0.0, 0.02 - base["sole_height"].min())  # the body moved down 2 cm, soles with it
    assert clip_contact_stats(builder.model, sunk)["max_penetration_m"] == pytest.approx(expected, abs=1e-5)
    drift = np.linspace(0.0, 0.1, clip["root_pos"].shape[0], dtype=np.float32)  # whole body slides 10 cm/s
    sliding = dict(clip, root_pos=clip["root_pos"] + np.stack([drift, 0 * drift, 0 * drift], axis=1))
    assert clip_contact_stats(builder.model, sliding)["max_stance_slip_mps"] == pytest.approx(0.1, rel=1e-3)


def test_bad_requests_name_the_problem(builder):
    with pytest.raises(KeyError, match="unknown synthetic clip 'moonwalk'"):
        builder.clip("moonwalk")
    with pytest.raises(ValueError, match="duration_s"):
        builder.clip("squat", duration_s=99.0)
    with pytest.raises(ValueError, match="fps"):
        builder.clip("squat", fps=0.0)


def test_clip_dict_matches_motion_clip_fields(builder):
    clip = builder.clip("bow", duration_s=0.5)
    assert set(clip) == {"name", "source", "format", "fps", "root_pos", "root_quat", "joint_pos"}
    assert clip["source"] == "synth:g1"


# ---- slow: the full set ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", SYNTH_CLIPS)
def test_every_clip_is_clean(builder, all_clips, name):
    clip = all_clips[name]
    duration = (clip["root_pos"].shape[0] - 1) / clip["fps"]
    assert 4.0 <= duration <= 20.0
    _check_clip(builder, clip)
    # Starts standing in the default pose, on the ground.
    np.testing.assert_allclose(clip["joint_pos"][0], builder.robot.default_joint_pos, atol=0.05)


@pytest.mark.slow
def test_full_set_is_deterministic(all_clips):
    again = synth_all(fps=50.0)
    for clip in again:
        for key in ("root_pos", "root_quat", "joint_pos"):
            np.testing.assert_array_equal(clip[key], all_clips[clip["name"]][key])


@pytest.mark.slow
def test_clips_actually_move(builder, all_clips):
    z = {n: c["root_pos"][:, 2] for n, c in all_clips.items()}
    assert z["squat"].max() - z["squat"].min() > 0.10
    walk = all_clips["walk_forward"]["root_pos"]
    assert walk[-1, 0] - walk[0, 0] > 1.0
    back = all_clips["walk_backward"]["root_pos"]
    assert back[-1, 0] - back[0, 0] < -0.5
    turn = _yaw(all_clips["turn_left"]["root_quat"])
    assert turn[-1] - turn[0] > np.radians(60)
    assert _yaw(all_clips["turn_right"]["root_quat"])[-1] < -np.radians(60)
    side = all_clips["side_step"]["root_pos"][:, 1]
    assert side.max() - side.min() > 0.15
    shift = all_clips["weight_shift"]["root_pos"][:, 1]
    assert shift.max() > 0.05 and shift.min() < -0.05
    for name in ("step_in_place", "side_step", "walk_forward", "turn_left"):
        assert clip_contact_stats(builder.model, all_clips[name])["sole_height"].max() > 0.03, name
    data = mujoco.MjData(builder.model)
    for name, site in (
        ("wave_right", "vr_right_hand"),
        ("wave_left", "vr_left_hand"),
        ("arm_raise_front", "vr_left_hand"),
    ):
        c = all_clips[name]
        path = []
        for i in range(c["root_pos"].shape[0]):
            data.qpos[:3], data.qpos[3:7], data.qpos[7:] = (
                c["root_pos"][i],
                c["root_quat"][i],
                c["joint_pos"][i],
            )
            mujoco.mj_kinematics(builder.model, data)
            path.append(data.site_xpos[builder.model.site(site).id].copy())
        path = np.array(path)
        assert np.linalg.norm(np.diff(path, axis=0), axis=1).sum() > 1.0, name  # metres travelled
        assert path[:, 2].max() > 1.2, name  # the hand goes above the shoulders
