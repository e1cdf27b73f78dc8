"""The live policy loop without a browser: a checkpoint (run in torch) and its ONNX export drive the
same trajectory; each step is the sim2sim loop's step; push, reset, encoder switch, clip end and
the terminations that would fire do what the page says."""

import numpy as np
import pytest
import torch
from view_builders import checkpoint, view_store

from sonic_ray.deploy.export import export_checkpoint
from sonic_ray.deploy.sim2sim import OnnxPolicy, Sim2Sim
from sonic_ray.view.session import (
    PUSH_LIN_VEL_XY,
    PUSH_LIN_VEL_Z,
    PolicySession,
    checkpoint_policies,
    onnx_policies,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("session")
    store = view_store(root / "v.parquet")
    ckpt = checkpoint(root, store)
    export_checkpoint(ckpt, root / "onnx", batch=8)
    return store, ckpt, root / "onnx"


def _trajectory(session: PolicySession, steps: int) -> np.ndarray:
    out = []
    for _ in range(steps):
        session.step()
        out.append(session.sim.data.qpos.copy())
    return np.array(out)


def test_checkpoint_and_its_export_drive_the_same_loop(built):
    store, ckpt, onnx = built
    torch_policies, default_store = checkpoint_policies(ckpt)
    assert default_store == str(store) and list(torch_policies) == ["g1", "teleop", "smpl"]
    from_ckpt = PolicySession(torch_policies, store, clip="sway1")
    teleop_file = onnx_policies(onnx / "policy_teleop.onnx")
    from_onnx = PolicySession(teleop_file, store, clip="sway1", encoder="teleop")
    assert list(from_onnx.policies) == ["g1", "teleop", "smpl"]  # the sibling files, in the usual order
    assert from_onnx.encoder == "teleop" and from_ckpt.encoder == "g1"
    for enc in ("g1", "teleop", "smpl"):
        from_ckpt.set_encoder(enc)
        from_onnx.set_encoder(enc)
        np.testing.assert_allclose(_trajectory(from_ckpt, 12), _trajectory(from_onnx, 12), atol=1e-5)


def test_a_step_is_the_sim2sim_step(built):
    """Stepping the session reproduces `Sim2Sim.run_clip` (what `sonic-ray sim2sim` measures)."""
    store, _, onnx = built
    session = PolicySession(onnx_policies(onnx / "policy_g1.onnx"), store, clip="sway0")
    run = Sim2Sim(OnnxPolicy(onnx / "policy_g1.onnx")).run_clip(session.reference("sway0"))
    steps = len(run.robot_qpos)
    got = np.concatenate((session.sim.data.qpos[None].copy(), _trajectory(session, steps - 1)))
    np.testing.assert_allclose(got, run.robot_qpos, atol=1e-9)


def test_push_reset_encoder_clip_end_and_terminations(built):
    store, ckpt, _ = built
    s = PolicySession(checkpoint_policies(ckpt)[0], store, clip="sway2", seed=3)
    _trajectory(s, 3)
    before = s.sim.data.qvel[:3].copy()
    dv = s.push()
    np.testing.assert_allclose(s.sim.data.qvel[:3], before + dv)
    assert abs(dv[0]) <= PUSH_LIN_VEL_XY[1] and abs(dv[2]) <= PUSH_LIN_VEL_Z[1] and np.abs(dv).sum() > 0

    s.reset()
    assert s.last.frame == 0 and s.last.error_mm < 1e-3 and s.last.first_failure is None
    np.testing.assert_allclose(s.robot_pose()[0], s.reference_pose()[0], atol=1e-6)

    s.set_encoder("smpl")
    assert s.encoder == "smpl"
    with pytest.raises(KeyError, match="encoder 'bogus'"):
        s.set_encoder("bogus")

    s.sim.data.qpos[2] -= 0.5  # half a metre below the reference: the anchor height term fires
    report = s.step()
    assert "anchor_pos" in report.failures and report.first_failure == (1, "anchor_pos")
    assert report.error_mm > 300
    s.select_clip("sway2")
    frames = s.ref.num_frames
    reports = [s.step() for _ in range(frames + 1)]
    assert [r.frame for r in reports[frames - 2 :]] == [frames - 1, 0, 1]  # the clip's end starts it again
