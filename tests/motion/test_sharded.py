import json
import os

import numpy as np
import pytest
from motion_builders import G1_JOINTS, make_clip

from sonic_ray.motion import sharded
from sonic_ray.motion.sharded import MANIFEST, read_manifest, verify_store, write_sharded
from sonic_ray.motion.store import (
    StoreError,
    iter_store,
    migrate,
    read_store,
    store_info,
    store_names,
    write_store,
)


def _clips(n, start=0, **kw):
    return [make_clip(f"c{i}", frames=10 + i % 7, seed=i, **kw) for i in range(start, start + n)]


def _assert_same(a, b):
    assert (a.name, a.fps, a.num_frames) == (b.name, b.fps, b.num_frames)
    for key in ("root_pos", "root_quat", "joint_pos"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def test_write_read_round_trip_across_shards_and_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(sharded, "ROW_GROUP_CLIPS", 4)
    store = tmp_path / "store"
    clips = _clips(23, smpl=True)
    clips[3].warnings = ["joint_pos: odd"]
    out = write_sharded(store, clips, joint_names=G1_JOINTS, max_clips=10)
    assert out["num_clips"] == 23 and out["duplicates"] == []
    m = read_manifest(store)
    assert [s["clips"] for s in m["shards"]] == [10, 10, 3]
    assert all(s["bytes"] == os.path.getsize(store / s["file"]) for s in m["shards"])
    got, header = read_store(store)
    assert header["joint_names"] == G1_JOINTS
    for a, b in zip(clips, got, strict=True):
        _assert_same(a, b)
    np.testing.assert_array_equal(clips[5].smpl_joints, got[5].smpl_joints)
    for k in range(3):
        assert [c.name for c in iter_store(store, shard=(k, 3))] == [f"c{i}" for i in range(k, 23, 3)]
    info = store_info(store)
    assert info["num_clips"] == 23 and info["num_shards"] == 3
    assert info["total_frames"] == sum(c.num_frames for c in clips)
    assert info["clips"][3]["warnings"] == ["joint_pos: odd"]


def test_append_dedups_by_content_and_rejects_name_clash(tmp_path):
    store = tmp_path / "store"
    write_sharded(store, _clips(5), joint_names=G1_JOINTS)
    again = _clips(3, start=3)  # c3, c4 already stored (same content), c5 new
    renamed = make_clip("other_name", frames=10 + 1 % 7, seed=1)  # content of c1 under a new name
    out = write_sharded(store, [*again, renamed], joint_names=G1_JOINTS)
    assert out["added"] == ["c5"] and out["duplicates"] == ["c3", "c4", "other_name"]
    assert store_names(store) == {f"c{i}" for i in range(6)}
    before = (store / MANIFEST).read_bytes()
    with pytest.raises(StoreError, match="already in the store"):
        write_sharded(store, [make_clip("c0", seed=99)], joint_names=G1_JOINTS)
    assert (store / MANIFEST).read_bytes() == before
    assert len(list(store.glob("shard-*.parquet"))) == 2  # the failed write's shard was removed


def test_crash_mid_import_leaves_previous_manifest_valid(tmp_path):
    store = tmp_path / "store"
    write_sharded(store, _clips(4), joint_names=G1_JOINTS)
    before = (store / MANIFEST).read_bytes()

    def dying():
        yield from _clips(3, start=10)
        raise KeyboardInterrupt  # the process is killed mid-import

    with pytest.raises(KeyboardInterrupt):
        write_sharded(store, dying(), joint_names=G1_JOINTS, max_clips=2)
    assert (store / MANIFEST).read_bytes() == before
    assert [c.name for c in iter_store(store)] == ["c0", "c1", "c2", "c3"]
    # a writer killed hard leaves an unreferenced shard: the next writer removes it
    (store / "shard-deadbeef.parquet").write_bytes(b"partial")
    write_sharded(store, _clips(1, start=20), joint_names=G1_JOINTS)
    assert not (store / "shard-deadbeef.parquet").exists()
    assert store_info(store)["num_clips"] == 5


def test_corrupt_shard_is_named_and_other_shards_read(tmp_path):
    store = tmp_path / "store"
    write_sharded(store, _clips(6), joint_names=G1_JOINTS, max_clips=3)
    m = read_manifest(store)
    bad = store / m["shards"][0]["file"]
    data = bytearray(bad.read_bytes())
    for i in range(200, 600):
        data[i] ^= 0xFF  # same size, garbled pages
    bad.write_bytes(bytes(data))
    problems = verify_store(store)
    assert len(problems) == 1 and str(bad) in problems[0]
    assert store_info(store)["num_clips"] == 6  # the manifest alone still answers
    with pytest.raises(StoreError, match=m["shards"][0]["file"]):
        list(iter_store(store))
    good = list(sharded.iter_sharded(store, indices=[3, 4, 5]))
    assert [c.name for c in good] == ["c3", "c4", "c5"]


def test_corrupt_manifest_is_named(tmp_path):
    store = tmp_path / "store"
    write_sharded(store, _clips(2), joint_names=G1_JOINTS)
    (store / MANIFEST).write_text(json.dumps({"format": "nope"}))
    with pytest.raises(StoreError, match="manifest.json"):
        store_info(store)


def test_migrate_one_file_store(tmp_path):
    one = tmp_path / "m.parquet"
    clips = _clips(5)
    write_store(one, clips, joint_names=G1_JOINTS)
    out = migrate(one, tmp_path / "store")
    assert out["num_clips"] == 5
    for a, b in zip(clips, iter_store(tmp_path / "store"), strict=True):
        _assert_same(a, b)
    assert store_info(tmp_path / "store")["joint_names"] == G1_JOINTS
