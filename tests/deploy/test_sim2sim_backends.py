"""Sim-to-sim on a BatchedSim backend (`--backend`), and `sonic-ray compare` of two output folders.

The BatchedSim path must be the plain-MuJoCo loop with only the physics swapped: on the `mujoco`
backend (CPU MuJoCo under the BatchedSim surface, float32 state) the two agree to float32 rounding.
Measured: body positions within 7e-8 m over whole clips; the test allows 1e-5 m.
"""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from deploy_builders import config, short_store, write_checkpoint

from sonic_ray.cli import main
from sonic_ray.deploy import sim2sim
from sonic_ray.deploy.export import export_checkpoint
from sonic_ray.deploy.physics import BatchedPhysics, MujocoPhysics
from sonic_ray.deploy.reference import load_references, vr_reference, vr_targets_from_reference
from sonic_ray.eval.metrics import clip_metrics
from sonic_ray.sim import available_backends

pytestmark = pytest.mark.slow
AGREE_M = 1e-5  # plain MjData vs the `mujoco` BatchedSim: float32 state, same physics


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("s2sb")
    store = short_store(root / "short.parquet", seconds=(1.2, 0.8, 1.0))
    ckpt, _ = write_checkpoint(root / "ckpt", config(store), action_gain=30.0)
    export_checkpoint(ckpt, root / "onnx", batch=8)
    return store, root / "onnx"


@pytest.mark.parametrize("encoder", ["g1", "teleop"])
def test_mujoco_backend_agrees_with_the_plain_loop(deployed, encoder, tmp_path):
    """Same policy, clips and start on one MjData and on the `mujoco` BatchedSim: same length, same
    failure term, body positions within AGREE_M over the whole clip (a VR-target run included)."""
    store, onnx_dir = deployed
    policy = sim2sim.OnnxPolicy(onnx_dir / f"policy_{encoder}.onnx")
    plain, batched = sim2sim.Sim2Sim(policy), sim2sim.Sim2Sim(policy, backend="mujoco")
    assert isinstance(plain.physics, MujocoPhysics) and isinstance(batched.physics, BatchedPhysics)
    refs = load_references(store, policy.meta, None)
    if encoder == "teleop":
        np.savez(tmp_path / "vr.npz", **vr_targets_from_reference(refs[1], policy.meta))
        refs = [vr_reference(tmp_path / "vr.npz", policy.meta)]
    outcomes = set()
    for ref in refs:
        a, b = plain.run_clip(ref), batched.run_clip(ref)
        assert (len(a.robot_pos_w), a.failure) == (len(b.robot_pos_w), b.failure), ref.name
        assert np.abs(a.robot_pos_w - b.robot_pos_w).max() < AGREE_M, ref.name
        assert np.abs(a.robot_qpos - b.robot_qpos).max() < AGREE_M, ref.name
        outcomes.add(a.failed)
    if encoder == "g1":
        assert outcomes == {True, False}  # the clips exercise both a failure and a completed clip


@pytest.mark.skipif("mujoco_warp" not in available_backends(), reason="mujoco_warp not installed")
def test_mujoco_warp_backend_ends_every_clip_like_the_plain_loop(deployed):
    """MuJoCo Warp (float32 physics) under the same loop: same length and failure per clip, per-clip
    MPJPE within 1 mm of plain MuJoCo (measured: 0.15 mm)."""
    store, onnx_dir = deployed
    policy = sim2sim.OnnxPolicy(onnx_dir / "policy_g1.onnx")
    refs = load_references(store, policy.meta, None)
    fps, names = float(policy.meta["control_hz"]), list(policy.meta["body_names"])
    runs = [sim2sim.Sim2Sim(policy, backend=b) for b in ("plain", "mujoco_warp")]
    for ref in refs:
        a, b = (s.run_clip(ref) for s in runs)
        assert (len(a.robot_pos_w), a.failure) == (len(b.robot_pos_w), b.failure), ref.name
        ea, eb = (
            clip_metrics(r.robot_pos_w, r.ref_pos_w, fps=fps, failed=r.failed, body_names=names)["mpjpe_g_mm"]
            for r in (a, b)
        )
        assert abs(ea - eb) < 1.0, (ref.name, ea, eb)


def test_backend_run_records_the_backend_and_compares(deployed, tmp_path, capsys):
    """`sonic-ray sim2sim --backend mujoco` and the plain run, then `sonic-ray compare` on the two
    folders: compare.json and report.html hold every clip of both with B - A, and the summary rows
    are the two metrics.json's."""
    store, onnx_dir = deployed
    onnx = str(onnx_dir / "policy_g1.onnx")
    common = ["sim2sim", "--onnx", onnx, "--motions", str(store)]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--backend", "mujoco", "--out", str(tmp_path / "mj"), "--obs-noise", "1"]) == 0
    ma = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "mj" / "metrics.json").read_text())
    assert (ma["sim2sim"]["backend"], mb["sim2sim"]["backend"]) == ("plain", "mujoco")
    capsys.readouterr()

    assert main(["compare", str(tmp_path / "plain"), str(tmp_path / "mj"), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "success_rate: plain" in out and "mujoco" in out
    result = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert result["labels"] == ["plain", "mujoco"]
    rows_a = {r["clip"]: r for r in pq.read_table(tmp_path / "plain" / "clips.parquet").to_pylist()}
    rows_b = {r["clip"]: r for r in pq.read_table(tmp_path / "mj" / "clips.parquet").to_pylist()}
    assert [c["clip"] for c in result["clips"]] == sorted(rows_a) == ["short0", "short1", "short2"]
    for c in result["clips"]:
        a, b = rows_a[c["clip"]], rows_b[c["clip"]]
        assert (c["success_a"], c["success_b"]) == (a["success"], b["success"])
        assert c["completed_diff"] == pytest.approx(b["completed"] - a["completed"])
        assert c["mpjpe_g_mm_diff"] == pytest.approx(b["mpjpe_g_mm"] - a["mpjpe_g_mm"])
    assert any(abs(c["mpjpe_g_mm_diff"]) > 1e-3 for c in result["clips"])  # obs noise changed B
    for key in ("success_rate", "completed_mean", "mpjpe_g_mm", "num_clips"):
        s = result["summary"][key]
        assert (s["a"], s["b"]) == (ma[key], mb[key])
    page = (tmp_path / "c" / "report.html").read_text()
    assert all(name in page for name in rows_a) and "data:image/png;base64," in page
    assert "<script" not in page
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["compare.json", "report.html"]


def test_bad_inputs_exit_2_with_one_line(deployed, tmp_path, capsys):
    """Unknown backend, an unavailable Isaac Lab, a missing folder, a folder that is not an eval
    output: exit code 2 and one line naming the problem (no traceback)."""
    store, onnx_dir = deployed
    common = ["sim2sim", "--onnx", str(onnx_dir / "policy_g1.onnx"), "--motions", str(store)]
    cases = [
        ([*common, "--backend", "physx", "--out", str(tmp_path / "x")], "unknown --backend 'physx'"),
        (["compare", str(tmp_path / "nope"), str(tmp_path / "nope2"), "--out", str(tmp_path / "c")], "nope"),
        (["compare", str(onnx_dir), str(onnx_dir), "--out", str(tmp_path / "c")], "not an eval/sim2sim"),
    ]
    if "isaaclab" not in available_backends():
        cases.append(([*common, "--backend", "isaaclab"], "Isaac Lab is not importable"))
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "c").exists()
