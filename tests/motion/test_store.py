import os

import numpy as np
import pytest
from motion_builders import G1_JOINTS, make_clip

from sonic_ray.motion.store import StoreError, iter_store, read_store, store_info, store_names, write_store


def _clips(n, **kw):
    return [make_clip(f"c{i}", frames=10 + i, seed=i, **kw) for i in range(n)]


def test_round_trip_keeps_arrays_and_metadata(tmp_path):
    path = tmp_path / "m.parquet"
    clips = _clips(3, smpl=True)
    clips[1].smpl_joints = None
    clips[2].warnings = ["joint_pos: something"]
    clips[2].fk_max_err_m = 0.004
    assert write_store(path, clips, joint_names=G1_JOINTS) == 3
    got, header = read_store(path)
    assert header["joint_names"] == G1_JOINTS
    for a, b in zip(clips, got):
        assert (a.name, a.fps, a.num_frames) == (b.name, b.fps, b.num_frames)
        np.testing.assert_array_equal(a.root_pos, b.root_pos)
        np.testing.assert_array_equal(a.root_quat, b.root_quat)
        np.testing.assert_array_equal(a.joint_pos, b.joint_pos)
        assert b.joint_pos.dtype == np.float32
    np.testing.assert_array_equal(clips[0].smpl_joints, got[0].smpl_joints)
    assert got[1].smpl_joints is None
    assert got[2].warnings == ["joint_pos: something"] and got[2].fk_max_err_m == pytest.approx(0.004)


def test_shard_reads_clips_k_mod_n(tmp_path):
    path = tmp_path / "m.parquet"
    write_store(path, _clips(7), joint_names=G1_JOINTS)
    for k in range(3):
        names = [c.name for c in iter_store(path, shard=(k, 3))]
        assert names == [f"c{i}" for i in range(k, 7, 3)]
    with pytest.raises(ValueError, match="shard"):
        read_store(path, shard=(3, 3))


def test_info_reads_footer_index(tmp_path):
    path = tmp_path / "m.parquet"
    clips = _clips(4)
    clips[0].format, clips[1].format = "lafan_csv", "lafan_csv"
    write_store(path, clips, joint_names=G1_JOINTS)
    info = store_info(path)
    assert info["num_clips"] == 4 and info["by_format"] == {"lafan_csv": 2, "": 2}
    assert info["total_frames"] == sum(c.num_frames for c in clips)
    assert info["total_duration_s"] == pytest.approx(sum(c.duration_s for c in clips))


def test_append_and_name_clash(tmp_path):
    path = tmp_path / "m.parquet"
    write_store(path, _clips(2), joint_names=G1_JOINTS)
    write_store(path, [make_clip("new")], joint_names=G1_JOINTS, append=True)
    assert store_names(path) == {"c0", "c1", "new"}
    before = path.read_bytes()
    with pytest.raises(StoreError, match="'c1' already in the store"):
        write_store(path, [make_clip("other"), make_clip("c1")], joint_names=G1_JOINTS, append=True)
    assert path.read_bytes() == before
    with pytest.raises(StoreError, match="joint_names differ"):
        write_store(path, [make_clip("x")], joint_names=G1_JOINTS[::-1], append=True)


def test_failed_write_leaves_old_store_intact(tmp_path):
    path = tmp_path / "m.parquet"
    write_store(path, _clips(3), joint_names=G1_JOINTS)
    before = path.read_bytes()

    def exploding():
        yield make_clip("a")
        yield make_clip("b")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_store(path, exploding(), joint_names=G1_JOINTS)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [".m.parquet.lock", "m.parquet"]  # temp cleaned up, lock stays
    assert [c.name for c in read_store(path)[0]] == ["c0", "c1", "c2"]


def test_bad_shapes_and_foreign_files_are_named(tmp_path):
    clip = make_clip("bad")
    clip.joint_pos = clip.joint_pos[:, :5]
    with pytest.raises(StoreError, match="'bad': joint_pos has shape"):
        write_store(tmp_path / "m.parquet", [clip], joint_names=G1_JOINTS)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(StoreError, match="not a sonic-ray motion store"):
        store_info(tmp_path / "other.parquet")
