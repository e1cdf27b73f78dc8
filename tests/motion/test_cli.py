import argparse
import json

import numpy as np
import pytest
from motion_builders import G1_JOINTS, G1_LOWER, G1_UPPER, make_clip, toy_fk

from sonic_ray.motion.cli import add_parser
from sonic_ray.motion.importers.writers import (
    write_bones_csv,
    write_gmr_pkl,
    write_lafan_csv,
    write_mjlab_npz,
    write_sonic_pkl,
)
from sonic_ray.motion.store import read_store, store_info


def _g1_context(robot_name):
    assert robot_name == "g1"
    return list(G1_JOINTS), G1_LOWER, G1_UPPER, toy_fk


def _run(argv, capsys):
    parser = argparse.ArgumentParser(prog="sonic-ray")
    add_parser(parser.add_subparsers(dest="cmd", required=True), robot_context_fn=_g1_context)
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


def _write_npz(path, clip):
    body = toy_fk(clip.root_pos, clip.root_quat, clip.joint_pos)
    write_mjlab_npz(path, clip, body_pos_w=body, body_quat_w=np.repeat(clip.root_quat[:, None], 4, axis=1))


def _good_files(d):
    d.mkdir()
    write_sonic_pkl(d / "sonic.pkl", [make_clip("s1"), make_clip("s2", seed=1)])
    write_gmr_pkl(d / "gmr.pkl", make_clip("g", seed=2))
    write_lafan_csv(d / "lafan.csv", make_clip("l", seed=3))
    write_bones_csv(d / "bones.csv", make_clip("b", seed=4, fps=120.0), joint_names=G1_JOINTS)
    _write_npz(d / "mj.npz", make_clip("m", seed=5, fps=50.0))


def _bad_files(d):
    """One corrupted file per format, each broken in a different field."""
    d.mkdir()
    write_sonic_pkl(d / "sonic_bad.pkl", [make_clip("sb")])
    (d / "sonic_bad.pkl").write_bytes((d / "sonic_bad.pkl").read_bytes()[:200])  # truncated
    nan = make_clip("gb")
    nan.joint_pos[3, 0] = np.nan
    write_gmr_pkl(d / "gmr_bad.pkl", nan)
    short = make_clip("lb")
    short.joint_pos = short.joint_pos[:, :23]
    write_lafan_csv(d / "lafan_bad.csv", short)
    write_bones_csv(d / "bones_bad.csv", make_clip("bb"), joint_names=G1_JOINTS)
    text = (d / "bones_bad.csv").read_text().replace("left_knee_joint_dof", "left_knee_dof")
    (d / "bones_bad.csv").write_text(text)
    clip = make_clip("mb", fps=50.0)
    _write_npz(d / "mj_bad.npz", clip)
    with np.load(d / "mj_bad.npz") as z:
        parts = {k: z[k] for k in z.files if k != "body_quat_w"}
    np.savez(d / "mj_bad.npz", **parts)
    return {
        "sonic_bad.pkl": "pickle: cannot unpickle",
        "gmr_bad.pkl": "joint_pos: non-finite",
        "lafan_bad.csv": "columns: 30 columns, expected 36",
        "bones_bad.csv": "header: missing column(s) ['left_knee_joint_dof']",
        "mj_bad.npz": "keys: missing ['body_quat_w']",
    }


def test_import_json_reports_bad_files_and_imports_the_rest(tmp_path, capsys):
    _good_files(tmp_path / "good")
    expected = _bad_files(tmp_path / "bad")
    store = tmp_path / "motions.parquet"
    code, out = _run(
        ["motions", "import", str(tmp_path / "good"), str(tmp_path / "bad"), "--out", str(store), "--json"],
        capsys,
    )
    report = json.loads(out)
    assert code == 0 and set(report) == {"imported", "rejected"}
    assert sorted(c["name"] for c in report["imported"]) == ["bones", "gmr", "lafan", "mj", "s1", "s2"]
    assert set(report["imported"][0]) == {"name", "source", "frames", "fps", "fk_max_err_m"}
    fk_err = {c["name"]: c["fk_max_err_m"] for c in report["imported"]}
    assert fk_err["mj"] < 1e-5 and fk_err["lafan"] is None
    rejected = {r["source"].rsplit("/", 1)[-1]: r["reason"] for r in report["rejected"]}
    assert set(rejected) == set(expected)
    for name, prefix in expected.items():
        assert rejected[name].startswith(prefix), (name, rejected[name])
    assert store_info(store)["num_clips"] == 6


def test_reimport_rejects_name_clashes_and_exits_1(tmp_path, capsys):
    _good_files(tmp_path / "good")
    store = tmp_path / "motions.parquet"
    assert _run(["motions", "import", str(tmp_path / "good"), "--out", str(store), "--json"], capsys)[0] == 0
    before = store.read_bytes()
    code, out = _run(["motions", "import", str(tmp_path / "good"), "--out", str(store), "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["imported"] == [] and len(report["rejected"]) == 6
    assert all(r["reason"].startswith("name: clip name") for r in report["rejected"])
    assert store.read_bytes() == before


def test_import_appends_and_info_summarises(tmp_path, capsys):
    store = tmp_path / "motions.parquet"
    write_lafan_csv(tmp_path / "a.csv", make_clip("a"))
    write_lafan_csv(tmp_path / "b.csv", make_clip("b", frames=61, seed=1))
    clip = make_clip("c", frames=100, seed=2)
    clip.joint_pos[:10, 0] = 3.0
    write_lafan_csv(tmp_path / "c.csv", clip)
    assert _run(["motions", "import", str(tmp_path / "a.csv"), "--out", str(store), "--json"], capsys)[0] == 0
    code, _ = _run(
        ["motions", "import", str(tmp_path / "b.csv"), str(tmp_path / "c.csv"), "--out", str(store)], capsys
    )
    assert code == 0
    assert [c.name for c in read_store(store)[0]] == ["a", "b", "c"]
    code, out = _run(["motions", "info", str(store), "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["num_clips"] == 3 and info["by_format"] == {"lafan_csv": 3}
    assert info["total_duration_s"] == pytest.approx(39 / 30 + 60 / 30 + 99 / 30)
    assert list(info["warnings"]) == ["c"] and "outside joint limits" in info["warnings"]["c"][0]
    code, out = _run(["motions", "info", str(store)], capsys)
    flat = " ".join(out.split())  # rich wraps to the terminal width
    assert code == 0 and "3 clips" in flat and "lafan_csv" in flat


def test_real_g1_fk_check_through_robot_context(tmp_path, capsys):
    """With the robots package present: an NPZ whose bodies come from the G1 FK imports with
    ~0 FK error, and the same file with its joint columns reversed is rejected."""
    import torch

    from sonic_ray.motion.cli import robot_context
    from sonic_ray.robots.fk import TorchFK
    from sonic_ray.robots.registry import load_model

    names, lower, upper, fk = robot_context("g1")
    assert names == G1_JOINTS
    model, spec = load_model("g1")
    torch_fk = TorchFK(model, spec, dtype=torch.float64)
    clip = make_clip("g1clip", fps=50.0)
    as_t = [
        torch.as_tensor(np.asarray(a, dtype=np.float64))
        for a in (clip.root_pos, clip.root_quat, clip.joint_pos)
    ]
    body_pos, body_quat = (x.numpy() for x in torch_fk.forward(*as_t))
    write_mjlab_npz(tmp_path / "ok.npz", clip, body_pos_w=body_pos, body_quat_w=body_quat)
    swapped = make_clip("g1swap", fps=50.0)
    swapped.joint_pos = swapped.joint_pos[:, ::-1].copy()  # arms and legs exchanged
    write_mjlab_npz(tmp_path / "swap.npz", swapped, body_pos_w=body_pos, body_quat_w=body_quat)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="cmd"))  # the real robot_context
    args = parser.parse_args(
        ["motions", "import", str(tmp_path), "--out", str(tmp_path / "s.parquet"), "--json"]
    )
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in report["imported"]] == ["ok"] and report["imported"][0]["fk_max_err_m"] < 1e-4
    assert report["rejected"][0]["reason"].startswith("body_pos_w: FK of root + joints")
