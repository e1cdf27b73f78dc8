"""Sim-to-sim of an exported ONNX policy on Isaac Lab 3 / Newton (`sonic-ray sim2sim --backend isaaclab`).

Runs in .venv-isaaclab (Python 3.12, `make test-isaaclab`, which lists this file); skips elsewhere.
The policy is exported in-process (onnx, onnxruntime: the `export` extra, which isaaclab-setup
installs), then driven on one Newton world by the same loop as plain MuJoCo, and the two output
folders are put side by side by `sonic-ray compare`.
"""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from deploy_builders import config, short_store, write_checkpoint

from sonic_ray.sim import available_backends

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        "isaaclab" not in available_backends(),
        reason="Isaac Lab 3 not installed (Python 3.12: make test-isaaclab)",
    ),
]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="onnxruntime missing (the export extra; make isaaclab-setup)")
    from sonic_ray.deploy.export import export_checkpoint

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("s2s_isaaclab")
    store = short_store(root / "short.parquet", seconds=(1.2, 0.8))
    ckpt, _ = write_checkpoint(root / "ckpt", config(store), action_gain=30.0)
    export_checkpoint(ckpt, root / "onnx", batch=8)
    return store, root / "onnx"


def test_onnx_sim2sim_on_isaaclab_writes_the_report_and_compares(deployed, tmp_path, capsys):
    """Both clips run to their end or an evaluation termination on Isaac Lab; metrics.json,
    clips.parquet and report.html are written and say isaaclab; the robot starts on the reference's
    first frame as on plain MuJoCo; `sonic-ray compare` puts the two runs side by side."""
    from sonic_ray.cli import main
    from sonic_ray.deploy import sim2sim
    from sonic_ray.deploy.reference import load_references

    store, onnx_dir = deployed
    onnx = str(onnx_dir / "policy_g1.onnx")
    common = ["sim2sim", "--onnx", onnx, "--motions", str(store)]
    assert main([*common, "--backend", "isaaclab", "--out", str(tmp_path / "il")]) == 0
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert "[isaaclab] 2 clips" in capsys.readouterr().out
    m = json.loads((tmp_path / "il" / "metrics.json").read_text())
    assert m["sim2sim"]["backend"] == "isaaclab" and m["num_clips"] == 2 and m["env_steps"] > 40
    rows = pq.read_table(tmp_path / "il" / "clips.parquet").to_pylist()
    assert sorted(r["clip"] for r in rows) == ["short0", "short1"]
    for r in rows:
        assert 0 < r["completed"] <= 1 and r["success"] == (r["failure"] is None)
        assert np.isfinite(r["mpjpe_g_mm"])
    assert "sonic-ray sim2sim: policy_g1.onnx" in (tmp_path / "il" / "report.html").read_text()

    # the reset state is the reference's first frame on both simulators (float32 on Newton)
    policy = sim2sim.OnnxPolicy(onnx)
    ref = load_references(store, policy.meta, ["short1"])[0]
    il = sim2sim.Sim2Sim(policy, backend="isaaclab")
    first_il = il.reset(ref).body_pos_w
    il.physics.close()
    first_mj = sim2sim.Sim2Sim(policy).reset(ref).body_pos_w
    assert np.abs(first_il - first_mj).max() < 1e-4

    assert main(["compare", str(tmp_path / "plain"), str(tmp_path / "il"), "--out", str(tmp_path / "c")]) == 0
    result = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert result["labels"] == ["plain", "isaaclab"] and len(result["clips"]) == 2
    assert result["summary"]["success_rate"]["b"] == m["success_rate"]
    assert "isaaclab" in (tmp_path / "c" / "report.html").read_text()
