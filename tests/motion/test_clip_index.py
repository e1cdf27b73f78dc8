"""The sharded store's clip index file: round trip, append, schema-2 stores, crashes, corruption."""

import argparse
import json
import os

import numpy as np
import pytest
from motion_builders import G1_JOINTS, make_clip

from sonic_ray.motion import manifest as manifest_mod
from sonic_ray.motion import sharded
from sonic_ray.motion.cli import add_parser
from sonic_ray.motion.clip_index import COLUMNS
from sonic_ray.motion.sharded import (
    MANIFEST,
    clip_frames_fps,
    read_index,
    read_manifest,
    verify_store,
    write_sharded,
)
from sonic_ray.motion.store import StoreError, iter_store, store_info, store_size, store_warnings


def _clips(n, start=0):
    return [make_clip(f"c{i}", frames=10 + i % 7, seed=i) for i in range(start, start + n)]


def _index_files(store):
    return sorted(p.name for p in store.glob("clips-*.parquet"))


def _to_schema_2(store):
    """Rewrite a store's manifest as the schema-2 writer did (per-clip JSON columns, warnings by
    name) and delete its index file: a store written before the clip index had a file."""
    m = json.loads((store / MANIFEST).read_text())
    t = read_index(store).to_pydict()
    warnings = {n: w for n, w in zip(t["name"], t.pop("warnings"), strict=True) if w}
    (store / m["index"]["file"]).unlink()
    v2 = {
        "format": m["format"],
        "schema_version": 2,
        "joint_names": m["joint_names"],
        "shards": m["shards"],
        "clips": t,
        "warnings": warnings,
    }
    (store / MANIFEST).write_text(json.dumps(v2))
    sharded.forget(store)


def test_round_trip_keeps_per_clip_entries_out_of_the_manifest(tmp_path):
    store = tmp_path / "store"
    clips = _clips(7)
    clips[2].warnings = ["joint_pos: odd"]
    write_sharded(store, clips, joint_names=G1_JOINTS, max_clips=3)
    m = read_manifest(store)
    assert m["schema_version"] == 3 and "clips" not in m and _index_files(store) == [m["index"]["file"]]
    assert (
        m["index"]["clips"] == 7 and m["totals"]["num_clips"] == 7 and m["totals"]["num_with_warnings"] == 1
    )
    t = read_index(store)
    assert t.column_names == list(COLUMNS)
    assert t.column("name").to_pylist() == [c.name for c in clips]
    assert t.column("shard").to_pylist() == [0, 0, 0, 1, 1, 1, 2]
    assert t.column("row").to_pylist() == [0, 1, 2, 0, 1, 2, 0]
    frames, fps = clip_frames_fps(store)
    np.testing.assert_array_equal(frames, [c.num_frames for c in clips])
    assert store_size(store) == (list(G1_JOINTS), 7)
    assert store_warnings(store) == {"c2": ["joint_pos: odd"]}
    info = store_info(store)
    assert info["total_frames"] == sum(c.num_frames for c in clips) and info["by_format"] == {"": 7}
    assert [c["name"] for c in info["clips"]] == [c.name for c in clips]
    assert "clips" not in store_info(store, clips=False)
    assert [c.name for c in iter_store(store, shard=(1, 2))] == ["c1", "c3", "c5"]


def test_append_dedups_by_the_index_hash_column_and_replaces_the_index_file(tmp_path):
    store = tmp_path / "store"
    write_sharded(store, _clips(4), joint_names=G1_JOINTS)
    first = read_manifest(store)["index"]["file"]
    out = write_sharded(
        store, [*_clips(3, start=2), make_clip("again", frames=10, seed=0)], joint_names=G1_JOINTS
    )
    assert out["added"] == ["c4"] and out["duplicates"] == ["c2", "c3", "again"] and out["num_clips"] == 5
    m = read_manifest(store)
    assert m["generation"] == 2 and _index_files(store) == [m["index"]["file"]] != [first]
    assert read_index(store, ["name"]).column(0).to_pylist() == ["c0", "c1", "c2", "c3", "c4"]
    assert [c.name for c in iter_store(store)] == ["c0", "c1", "c2", "c3", "c4"]


def test_schema_2_store_opens_appends_and_upgrades(tmp_path, capsys):
    store = tmp_path / "store"
    clips = _clips(5)
    clips[1].warnings = ["fps: guessed"]
    write_sharded(store, clips, joint_names=G1_JOINTS, max_clips=2)
    _to_schema_2(store)
    info = store_info(store)
    assert (
        info["schema_version"] == 2
        and info["num_clips"] == 5
        and info["clips"][1]["warnings"] == ["fps: guessed"]
    )
    assert [c.name for c in iter_store(store, shard=(0, 2))] == ["c0", "c2", "c4"]
    assert store_size(store)[1] == 5 and store_warnings(store) == {"c1": ["fps: guessed"]}
    np.testing.assert_array_equal(clip_frames_fps(store)[0], [c.num_frames for c in clips])
    shards = {p.name: p.read_bytes() for p in store.glob("shard-*.parquet")}

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["motions", "upgrade", str(store)])
    assert args.func(args) == 0 and "upgraded to schema v3" in capsys.readouterr().out
    m = read_manifest(store)
    assert m["schema_version"] == 3 and m["totals"] == {k: info[k] for k in m["totals"]}
    assert {p.name: p.read_bytes() for p in store.glob("shard-*.parquet")} == shards
    assert [c.name for c in iter_store(store)] == [c.name for c in clips]
    assert store_warnings(store) == {"c1": ["fps: guessed"]}
    assert args.func(args) == 0 and "already current" in capsys.readouterr().out

    _to_schema_2(store)  # an append upgrades too
    out = write_sharded(store, [*_clips(1), *_clips(1, start=9)], joint_names=G1_JOINTS)
    assert out["added"] == ["c9"] and out["duplicates"] == ["c0"]
    assert read_manifest(store)["schema_version"] == 3 and store_size(store)[1] == 6


def test_crash_between_index_and_manifest_rename_leaves_the_old_store(tmp_path, monkeypatch):
    store = tmp_path / "store"
    write_sharded(store, _clips(3), joint_names=G1_JOINTS)
    before = (store / MANIFEST).read_bytes()
    old_index = _index_files(store)
    real = os.replace

    def dies_at_manifest(src, dst):
        if os.path.basename(dst) == MANIFEST:
            raise KeyboardInterrupt  # killed after the new index was renamed into place
        real(src, dst)

    monkeypatch.setattr(sharded.os, "replace", dies_at_manifest)
    with pytest.raises(KeyboardInterrupt):
        write_sharded(store, _clips(2, start=5), joint_names=G1_JOINTS)
    monkeypatch.setattr(sharded.os, "replace", real)
    assert (store / MANIFEST).read_bytes() == before and _index_files(store) == old_index
    sharded.forget(store)
    assert [c.name for c in iter_store(store)] == ["c0", "c1", "c2"]
    # a hard kill skips the clean-up: a renamed orphan index and a temp are left; readers ignore
    # them, the next writer deletes them
    (store / "clips-000002-deadbeef.parquet").write_bytes(b"orphan")
    (store / ".clips-000002-cafe.parquet.tmp-x").write_bytes(b"partial")
    assert store_size(store)[1] == 3 and verify_store(store) == []
    write_sharded(store, _clips(1, start=7), joint_names=G1_JOINTS)
    assert _index_files(store) == [read_manifest(store)["index"]["file"]]
    assert not (store / ".clips-000002-cafe.parquet.tmp-x").exists()
    assert [c.name for c in iter_store(store)] == ["c0", "c1", "c2", "c7"]


def _corrupt(file, start, stop):
    data = bytearray(file.read_bytes())
    for i in range(start, stop):
        data[i] ^= 0xFF
    file.write_bytes(bytes(data))


def test_corrupt_or_missing_index_is_named_with_what_was_expected(tmp_path):
    store = tmp_path / "store"
    write_sharded(store, _clips(6), joint_names=G1_JOINTS, max_clips=3)
    m = read_manifest(store)
    index = store / m["index"]["file"]
    good = index.read_bytes()
    expected = f"clip index of 6 clips, {len(good)} bytes, that {store / MANIFEST} names"

    footer = int.from_bytes(good[-8:-4], "little")
    _corrupt(index, 4, len(good) - 8 - footer)  # same size, every column's pages garbled
    sharded.forget(store)
    assert store_size(store)[1] == 6  # the manifest's totals still answer
    with pytest.raises(StoreError, match="corrupt on disk") as e:
        list(iter_store(store))
    assert str(index) in str(e.value) and expected in str(e.value)
    assert verify_store(store) == [f"{index}: content hash differs from the manifest's (corrupt on disk?)"]

    index.write_bytes(good[:-100])  # truncated
    sharded.forget(store)
    with pytest.raises(StoreError, match="clip index unreadable") as e:
        store_info(store)
    assert str(index) in str(e.value) and expected in str(e.value)

    index.unlink()
    sharded.forget(store)
    with pytest.raises(StoreError, match=f"{index}: clip index missing"):
        store_size(store)
    problems = verify_store(store)  # the shards themselves are sound
    assert len(problems) == 1 and problems[0].startswith(f"{index}: unreadable (FileNotFoundError")

    index.write_bytes(good)
    sharded.forget(store)
    assert [c.name for c in iter_store(store)] == [f"c{i}" for i in range(6)]


def test_reader_retries_when_a_writer_replaces_the_manifest_meanwhile(tmp_path, monkeypatch):
    store = tmp_path / "store"
    write_sharded(store, _clips(2), joint_names=G1_JOINTS)
    sharded.forget(store)
    real = manifest_mod.ClipIndex.open
    calls = []

    def racing(folder, entry, mpath):
        if not calls:  # between this reader's manifest read and its index open, a writer commits
            calls.append(1)
            write_sharded(store, _clips(1, start=4), joint_names=G1_JOINTS)
        return real(folder, entry, mpath)  # the first time: the old index is gone now

    monkeypatch.setattr(manifest_mod.ClipIndex, "open", staticmethod(racing))
    assert store_size(store)[1] == 3 and read_index(store, ["name"]).num_rows == 3


def test_motions_info_reads_totals_and_only_the_warnings_it_prints(tmp_path, capsys):
    store = tmp_path / "store"
    clips = _clips(55)
    for c in clips:
        c.warnings = [f"{c.name}: odd"]
    write_sharded(store, clips, joint_names=G1_JOINTS)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["motions", "info", str(store)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "55 clips" in out and "c49: odd" in out and "c50: odd" not in out and "5 more clips" in out
    args = parser.parse_args(["motions", "info", str(store), "--json"])
    assert args.func(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert len(info["warnings"]) == 55 and info["num_with_warnings"] == 55 and "clips" not in info
