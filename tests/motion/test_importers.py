import numpy as np
import pytest
from motion_builders import G1_JOINTS, make_clip, toy_fk

from sonic_ray.motion.importers import detect_format, load_file
from sonic_ray.motion.importers.writers import (
    write_bones_csv,
    write_gmr_pkl,
    write_lafan_csv,
    write_mjlab_npz,
    write_sonic_pkl,
)
from sonic_ray.motion.validate import ClipRejected, validate_clip


def _same_motion(a, b, atol=1e-5):
    np.testing.assert_allclose(b.root_pos, a.root_pos, atol=atol)
    # q and -q are the same rotation
    sign = np.sign((a.root_quat * b.root_quat).sum(-1, keepdims=True))
    np.testing.assert_allclose(b.root_quat * sign, a.root_quat, atol=atol)
    np.testing.assert_allclose(b.joint_pos, a.joint_pos, atol=atol)


@pytest.mark.parametrize("use_joblib", [True, False])
def test_sonic_pkl_round_trip(tmp_path, use_joblib):
    clips = [make_clip("walk", smpl=True), make_clip("run", seed=1, fps=50.0)]
    path = tmp_path / "sonic.pkl"
    write_sonic_pkl(path, clips, use_joblib=use_joblib)
    got = load_file(path, joint_names=G1_JOINTS)
    assert [c.name for c in got] == ["walk", "run"] and {c.format for c in got} == {"sonic_pkl"}
    assert [c.fps for c in got] == [30.0, 50.0]
    for a, b in zip(clips, got):
        _same_motion(a, b)
    np.testing.assert_allclose(got[0].smpl_joints, clips[0].smpl_joints)


def test_gmr_pkl_round_trip(tmp_path):
    clip = make_clip("dance", fps=60.0)
    write_gmr_pkl(tmp_path / "dance.pkl", clip)
    (got,) = load_file(tmp_path / "dance.pkl", joint_names=G1_JOINTS)
    assert (got.name, got.format, got.fps) == ("dance", "gmr_pkl", 60.0)
    _same_motion(clip, got)


def test_lafan_csv_round_trip_and_fps(tmp_path):
    clip = make_clip("dance1_subject1")
    path = tmp_path / "dance1_subject1.csv"
    write_lafan_csv(path, clip)
    assert detect_format(path) == "lafan_csv"
    (got,) = load_file(path, joint_names=G1_JOINTS)
    assert (got.name, got.format, got.fps) == ("dance1_subject1", "lafan_csv", 30.0)
    _same_motion(clip, got)
    assert load_file(path, joint_names=G1_JOINTS, fps=60.0)[0].fps == 60.0


def test_bones_csv_round_trip_maps_columns_by_name(tmp_path):
    clip = make_clip("jump", fps=120.0)
    path = tmp_path / "jump.csv"
    write_bones_csv(path, clip, joint_names=G1_JOINTS)
    (got,) = load_file(path, joint_names=G1_JOINTS)
    assert (got.format, got.fps) == ("bones_csv", 120.0)
    _same_motion(clip, got, atol=1e-6)
    # the same file with joint columns in another order imports identically
    rows = path.read_text().splitlines()
    cells = [r.split(",") for r in rows]
    order = list(range(7)) + list(range(len(cells[0]) - 1, 6, -1))
    path.write_text("\n".join(",".join(r[i] for i in order) for r in cells) + "\n")
    (shuffled,) = load_file(path, joint_names=G1_JOINTS)
    np.testing.assert_allclose(shuffled.joint_pos, got.joint_pos)


def test_mjlab_npz_round_trip_with_fk_check(tmp_path):
    clip = make_clip("turn", fps=50.0)
    body_pos = toy_fk(clip.root_pos, clip.root_quat, clip.joint_pos)
    body_quat = np.repeat(clip.root_quat[:, None], body_pos.shape[1], axis=1)
    path = tmp_path / "turn.npz"
    write_mjlab_npz(path, clip, body_pos_w=body_pos, body_quat_w=body_quat)
    (got,) = load_file(path, joint_names=G1_JOINTS)
    assert (got.format, got.fps) == ("mjlab_npz", 50.0)
    _same_motion(clip, got)
    validate_clip(got, joint_names=G1_JOINTS, fk=toy_fk)
    assert got.fk_max_err_m < 1e-5 and not got.warnings


def test_format_is_detected_by_content_not_extension(tmp_path):
    clip = make_clip("x")
    write_gmr_pkl(tmp_path / "a.csv", clip)  # a pickle named .csv
    write_lafan_csv(tmp_path / "b.pkl", clip)  # a CSV named .pkl
    assert detect_format(tmp_path / "a.csv") == "pickle"
    assert detect_format(tmp_path / "b.pkl") == "lafan_csv"
    assert load_file(tmp_path / "a.csv", joint_names=G1_JOINTS)[0].format == "gmr_pkl"
    (tmp_path / "notes.txt").write_text("hello, world\n")
    with pytest.raises(ClipRejected, match="notes.txt: format: not a recognised"):
        load_file(tmp_path / "notes.txt", joint_names=G1_JOINTS)


def test_bad_clip_inside_multi_clip_pickle_is_isolated(tmp_path):
    import joblib

    good = make_clip("good")
    from sonic_ray.motion.importers.writers import sonic_clip_dict

    joblib.dump({"good": sonic_clip_dict(good), "bad": {"foo": np.zeros(3)}}, tmp_path / "mix.pkl")
    out = load_file(tmp_path / "mix.pkl", joint_names=G1_JOINTS)
    assert out[0].name == "good"
    assert (
        isinstance(out[1], ClipRejected) and out[1].field == "keys" and out[1].source.endswith("mix.pkl[bad]")
    )
