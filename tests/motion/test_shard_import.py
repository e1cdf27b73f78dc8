import argparse
import json
import sys

import pytest
from motion_builders import G1_JOINTS, G1_LOWER, G1_UPPER, make_clip, toy_fk
from test_cli import _bad_files, _good_files

from sonic_ray.motion.cli import add_parser
from sonic_ray.motion.importers.writers import write_sonic_pkl
from sonic_ray.motion.shard_import import import_sharded, list_files
from sonic_ray.motion.sharded import read_manifest
from sonic_ray.motion.store import iter_store, store_info


def g1_context(robot_name):
    assert robot_name == "g1"
    return list(G1_JOINTS), G1_LOWER, G1_UPPER, toy_fk


def _run(argv, capsys, ray_engine=None):
    parser = argparse.ArgumentParser(prog="sonic-ray")
    add_parser(
        parser.add_subparsers(dest="cmd", required=True), robot_context_fn=g1_context, ray_engine=ray_engine
    )
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


def test_serial_import_rejects_bad_files_keeps_the_rest_and_dedups(tmp_path, capsys):
    _good_files(tmp_path / "good")
    expected = _bad_files(tmp_path / "bad")
    store = tmp_path / "store"
    code, out = _run(
        [
            "motions",
            "import",
            str(tmp_path / "good"),
            str(tmp_path / "bad"),
            "--out",
            str(store),
            "--engine",
            "serial",
            "--json",
        ],
        capsys,
    )
    report = json.loads(out)
    assert code == 0 and report["engine"] == "serial"
    assert sorted(c["name"] for c in report["imported"]) == ["bones", "gmr", "lafan", "mj", "s1", "s2"]
    got = {r["source"].rsplit("/", 1)[-1]: r["reason"] for r in report["rejected"]}
    assert set(got) == set(expected)
    for name, reason in expected.items():
        assert reason in got[name]
    assert store_info(store)["num_clips"] == 6
    # the same files again: every clip is a duplicate, nothing is rejected, the manifest is unchanged
    before = (store / "manifest.json").read_bytes()
    code, out = _run(["motions", "import", str(tmp_path / "good"), "--out", str(store), "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["imported"] == [] and len(report["duplicates"]) == 6
    assert (store / "manifest.json").read_bytes() == before
    assert len(list(store.glob("shard-*.parquet"))) == len(read_manifest(store)["shards"])


def test_list_file_and_info_reads_the_manifest(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_sonic_pkl(src / f"f{i}.pkl", [make_clip(f"c{i}", seed=i)])
    listing = tmp_path / "files.txt"
    listing.write_text("# two of three\nsrc/f0.pkl\n\nsrc/f2.pkl\n")
    assert list_files([], str(listing)) == [str(src / "f0.pkl"), str(src / "f2.pkl")]
    store = tmp_path / "store"
    assert _run(["motions", "import", "--list", str(listing), "--out", str(store), "--json"], capsys)[0] == 0
    code, out = _run(["motions", "info", str(store), "--json", "--verify"], capsys)
    info = json.loads(out)
    assert code == 0 and info["num_clips"] == 2 and info["num_shards"] == 1 and info["bad_shards"] == []


def test_failed_import_commits_nothing_and_removes_its_shards(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        write_sonic_pkl(src / f"f{i}.pkl", [make_clip(f"c{i}", seed=i)])
    store = tmp_path / "store"
    import_sharded(list_files([src / "f0.pkl"]), out=store, robot="g1", context_fn=g1_context)
    before = (store / "manifest.json").read_bytes()

    def dies_after_two_batches(files, kw, *, batch_files, on_result=None):
        from sonic_ray.motion.shard_import import run_serial

        run_serial(files[:2], kw, batch_files=1)
        raise RuntimeError("worker node lost")

    with pytest.raises(RuntimeError):
        import_sharded(
            list_files([src]),
            out=store,
            robot="g1",
            context_fn=g1_context,
            engine=dies_after_two_batches,
            batch_files=1,
        )
    assert (store / "manifest.json").read_bytes() == before
    assert len(list(store.glob("shard-*.parquet"))) == 1
    assert [c.name for c in iter_store(store)] == ["c0"]


@pytest.mark.slow
@pytest.mark.ray
def test_ray_data_import_matches_serial(tmp_path):
    import ray

    from sonic_ray.ingest import run_ray

    for mod in ("motion_builders", __name__):  # test helpers travel by value to the Ray workers
        ray.cloudpickle.register_pickle_by_value(sys.modules[mod])
    src = tmp_path / "src"
    src.mkdir()
    for f in range(8):
        write_sonic_pkl(src / f"f{f}.pkl", [make_clip(f"c{f}_{i}", seed=10 * f + i) for i in range(5)])
    (src / "broken.pkl").write_bytes(b"\x80\x04garbage")
    files = list_files([src])

    def engine(files, kw, *, batch_files, on_result=None):
        return run_ray(files, kw, batch_files=batch_files, on_result=on_result, workers=2)

    seen = []
    report = import_sharded(
        files,
        out=tmp_path / "ray",
        robot="g1",
        context_fn=g1_context,
        engine=engine,
        batch_files=2,
        on_result=seen.append,
    )
    serial = import_sharded(files, out=tmp_path / "serial", robot="g1", context_fn=g1_context, batch_files=2)
    assert [c["name"] for c in report["imported"]] == [c["name"] for c in serial["imported"]]
    assert len(report["imported"]) == 40 and len(report["rejected"]) == 1 and len(seen) == 5
    a, b = list(iter_store(tmp_path / "ray")), list(iter_store(tmp_path / "serial"))
    assert [c.name for c in a] == [c.name for c in b]
    assert all((x.joint_pos == y.joint_pos).all() for x, y in zip(a, b, strict=True))
