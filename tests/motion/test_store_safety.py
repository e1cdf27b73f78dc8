"""The store under concurrent writers, killed writers, disk corruption and hostile inputs: no clip is
lost, no temp file outlives the next write, corruption is named and never copied forward, a bad file
or --out is one message and the good files beside it still import."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from motion_builders import G1_JOINTS, make_clip
from test_cli import _g1_context, _run, _write_npz

import sonic_ray.motion.store as store_mod
from sonic_ray.motion.cli import add_parser
from sonic_ray.motion.store import StoreError, iter_store, store_info, store_lock, write_store

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _python(code: str, *args: str) -> subprocess.Popen:
    """A separate Python process running `code` with the repo and tests/motion importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _cli(argv) -> int:
    parser = argparse.ArgumentParser(prog="sonic-ray")
    add_parser(parser.add_subparsers(dest="cmd", required=True), robot_context_fn=_g1_context)
    args = parser.parse_args(argv)
    return args.func(args)


def _names(path) -> list[str]:
    return [c["name"] for c in store_info(path)["clips"]]


@pytest.mark.slow  # separate Python processes (seconds)
def test_a_writer_waits_for_the_lock_and_keeps_what_the_holder_wrote(tmp_path):
    path = tmp_path / "m.parquet"
    write_store(path, [make_clip("c0")], joint_names=G1_JOINTS)
    with store_lock(path):
        other = _python(
            """
            import sys
            from motion_builders import G1_JOINTS, make_clip
            from sonic_ray.motion.store import write_store
            write_store(sys.argv[1], [make_clip("theirs")], joint_names=G1_JOINTS, append=True)
        """,
            str(path),
        )
        time.sleep(1.0)
        assert other.poll() is None, other.communicate()  # blocked on the lock
        write_store(path, [make_clip("mine")], joint_names=G1_JOINTS, append=True)  # re-entrant
    assert other.wait(timeout=120) == 0, other.communicate()
    assert _names(path) == ["c0", "mine", "theirs"]


@pytest.mark.slow  # separate Python processes (seconds)
def test_two_concurrent_motions_imports_both_land(tmp_path):
    """Two real `motions import` processes into one store, started together (the issue's case: without
    a lock both exit 0 and the store keeps one import's clips)."""
    store, go = tmp_path / "m.parquet", tmp_path / "go"
    for who in ("a", "b"):
        (tmp_path / who).mkdir()
        for i in range(12):
            clip = make_clip(f"{who}{i:02d}", frames=200, fps=50.0, seed=i)
            _write_npz(tmp_path / who / f"{clip.name}.npz", clip)
    code = """
        import argparse, json, os, sys, time
        from test_cli import _g1_context
        from sonic_ray.motion.cli import add_parser
        parser = argparse.ArgumentParser()
        add_parser(parser.add_subparsers(dest="cmd", required=True), robot_context_fn=_g1_context)
        args = parser.parse_args(["motions", "import", sys.argv[1], "--out", sys.argv[2], "--json"])
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.01)
        sys.exit(args.func(args))
    """
    procs = [_python(code, str(tmp_path / who), str(store), str(go)) for who in ("a", "b")]
    time.sleep(0.5)
    go.touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    assert [len(r["imported"]) for r in reports] == [12, 12]
    assert sorted(_names(store)) == sorted(f"{w}{i:02d}" for w in "ab" for i in range(12))


@pytest.mark.slow  # separate Python processes (seconds)
def test_a_sigkilled_write_leaves_a_temp_the_next_write_removes(tmp_path):
    path = tmp_path / "m.parquet"
    write_store(path, [make_clip("c0")], joint_names=G1_JOINTS)
    before = path.read_bytes()
    writer = _python(
        """
        import sys, time
        from motion_builders import G1_JOINTS, make_clip
        from sonic_ray.motion.store import write_store
        def clips():
            yield make_clip("half")
            print("writing", flush=True)
            time.sleep(600)
        write_store(sys.argv[1], clips(), joint_names=G1_JOINTS, append=True)
    """,
        str(path),
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    temps = [p for p in tmp_path.iterdir() if p.name.startswith(".m.parquet.tmp-")]
    assert len(temps) == 1 and path.read_bytes() == before  # the store itself untouched
    write_store(path, [make_clip("c1")], joint_names=G1_JOINTS, append=True)  # the lock died with it
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.parquet.lock", "m.parquet"]
    assert _names(path) == ["c0", "c1"]


def _flip_a_byte_in_clip(path: Path, row_group: int) -> None:
    col = pq.ParquetFile(path).metadata.row_group(row_group).column(_column_index(path, "joint_pos"))
    offset = col.data_page_offset + col.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def _column_index(path: Path, name: str) -> int:
    meta = pq.ParquetFile(path).metadata
    return next(i for i in range(meta.num_columns) if meta.schema.column(i).path.startswith(name))


def test_page_checksums_name_a_corrupt_store_and_an_append_never_copies_it(tmp_path):
    path = tmp_path / "m.parquet"
    write_store(path, [make_clip(f"c{i}", seed=i) for i in range(3)], joint_names=G1_JOINTS)
    _flip_a_byte_in_clip(path, 1)
    corrupt = path.read_bytes()
    assert store_info(path)["num_clips"] == 3  # the footer is intact
    assert pq.ParquetFile(path).read_row_group(1).num_rows == 1  # unverified, the flip reads silently
    with pytest.raises(StoreError, match=r"m.parquet: store data unreadable, corrupt on disk"):
        list(iter_store(path))
    with pytest.raises(StoreError, match="corrupt on disk"):
        write_store(path, [make_clip("new")], joint_names=G1_JOINTS, append=True)
    assert path.read_bytes() == corrupt and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_store_written_before_page_checksums_still_reads(tmp_path, monkeypatch):
    path = tmp_path / "m.parquet"
    old_options = {k: v for k, v in store_mod._WRITE_OPTIONS.items() if k != "write_page_checksum"}
    monkeypatch.setattr(store_mod, "_WRITE_OPTIONS", old_options)
    write_store(path, [make_clip("c0"), make_clip("c1", seed=1)], joint_names=G1_JOINTS)
    monkeypatch.undo()
    assert [c.name for c in iter_store(path)] == ["c0", "c1"]
    write_store(path, [make_clip("c2", seed=2)], joint_names=G1_JOINTS, append=True)
    assert _names(path) == ["c0", "c1", "c2"]


def test_a_string_joint_pos_is_rejected_by_name_and_the_good_files_import(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("good1", "good2"):
        _write_npz(d / f"{name}.npz", make_clip(name, fps=50.0))
    _write_npz(d / "bad.npz", make_clip("bad", fps=50.0))
    with np.load(d / "bad.npz") as z:
        parts = {k: z[k] for k in z.files}
    np.savez(d / "bad.npz", **{**parts, "joint_pos": parts["joint_pos"].astype(str)})
    code, out = _run(["motions", "import", str(d), "--out", str(tmp_path / "m.parquet"), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and sorted(c["name"] for c in report["imported"]) == ["good1", "good2"]
    [rejected] = report["rejected"]
    assert rejected["source"].endswith("bad.npz") and rejected["reason"].startswith("joint_pos: dtype <U")


@pytest.mark.parametrize("kind", ["folder", "not_parquet", "not_a_store", "unwritable"])
def test_a_bad_out_is_one_message(tmp_path, capsys, kind):
    _write_npz(tmp_path / "a.npz", make_clip("a", fps=50.0))
    out = {
        "folder": tmp_path / "dir.parquet",
        "not_parquet": tmp_path / "notes.parquet",
        "not_a_store": tmp_path / "other.parquet",
        "unwritable": Path("/proc/sonic-ray-test/m.parquet"),
    }[kind]
    if kind == "folder":
        out.mkdir()
    elif kind == "not_parquet":
        out.write_text("just text\n")
    elif kind == "not_a_store":
        import pyarrow as pa

        pq.write_table(pa.table({"x": [1, 2]}), out)
    before = out.read_bytes() if out.is_file() else None
    code = _cli(["motions", "import", str(tmp_path / "a.npz"), "--out", str(out), "--json"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"motions import: --out {out}: ")
    assert before is None or out.read_bytes() == before
