"""Fast pieces of the deployment path: metadata encoding, numpy rotations, history, references."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from sonic_ray.deploy import observations as O
from sonic_ray.deploy.onnx_meta import (
    FORMAT,
    REQUIRED_KEYS,
    MetadataError,
    read_metadata,
    save_atomic,
    set_metadata,
)
from sonic_ray.deploy.reference import select_clips, vr_reference
from sonic_ray.utils import rotations as R


def _tiny_model():
    node = helper.make_node("Round", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_metadata_values_are_json_and_read_back(tmp_path):
    meta = {k: 1 for k in REQUIRED_KEYS} | {
        "format": FORMAT,
        "kp": np.array([1.5, 2.0]),
        "observations": {"p": [1]},
    }
    model = _tiny_model()
    set_metadata(model, meta)
    assert {p.key: p.value for p in model.metadata_props}["kp"] == "[1.5, 2.0]"
    save_atomic(model, tmp_path / "m.onnx")
    back = read_metadata(tmp_path / "m.onnx")
    assert back["kp"] == [1.5, 2.0] and back["observations"] == {"p": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp file left


def test_metadata_without_a_required_key_is_named(tmp_path):
    model = _tiny_model()
    set_metadata(model, {"format": FORMAT, "kind": "policy"})
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(MetadataError, match=r"m.onnx: metadata lacks \['inputs'"):
        read_metadata(tmp_path / "m.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(MetadataError, match="junk.onnx: not a readable ONNX file"):
        read_metadata(tmp_path / "junk.onnx")


def test_numpy_rotations_equal_the_torch_ones():
    g = torch.Generator().manual_seed(0)
    a, b = (
        R.quat_normalize(torch.randn(50, 4, generator=g, dtype=torch.float64)),
        R.quat_normalize(torch.randn(50, 4, generator=g, dtype=torch.float64)),
    )
    v = torch.randn(50, 3, generator=g, dtype=torch.float64)
    an, bn, vn = a.numpy(), b.numpy(), v.numpy()
    np.testing.assert_allclose(O.quat_mul(an, bn), R.quat_mul(a, b).numpy(), atol=1e-12)
    np.testing.assert_allclose(O.quat_apply(an, vn), R.quat_apply(a, v).numpy(), atol=1e-12)
    np.testing.assert_allclose(O.quat_apply_inverse(an, vn), R.quat_apply_inverse(a, v).numpy(), atol=1e-12)
    np.testing.assert_allclose(O.quat_to_tan_norm(an), R.quat_to_tan_norm(a).numpy(), atol=1e-12)
    np.testing.assert_allclose(O.yaw_quat(an), R.yaw_quat(a).numpy(), atol=1e-12)


def _inputs(value: float) -> O.Inputs:
    ctx = O.DeployContext(
        default_joint_pos=np.zeros(2),
        anchor_index=0,
        lower_body_joint_ids=np.array([0]),
        future_offsets={"g1": np.array([0, 2, 5])},
    )
    state = O.RobotState(
        np.array([1.0, 0, 0, 0]),
        np.zeros(3),
        np.zeros(3),
        np.full(2, value),
        np.zeros(2),
        np.zeros((1, 3)),
        np.array([[1.0, 0, 0, 0]]),
    )
    ref = O.Reference({"joint_pos": np.arange(8.0)[:, None].repeat(2, 1), "joint_vel": np.zeros((8, 2))})
    return O.Inputs(state, ref, 4, np.zeros(2), ctx)


def test_history_is_oldest_first_and_a_reset_fills_every_slot():
    layout = {"history_length": 3, "terms": [{"name": "joint_pos_rel", "dim": 2}]}
    g = O.GroupBuilder("policy", layout)
    np.testing.assert_array_equal(g.reset(_inputs(1.0)), [1, 1, 1, 1, 1, 1])
    g.step(_inputs(2.0))
    np.testing.assert_array_equal(g.step(_inputs(3.0)), [1, 1, 2, 2, 3, 3])
    with pytest.raises(ValueError, match="term 'joint_pos_rel' gave 2 numbers, the metadata says 5"):
        O.GroupBuilder("policy", {"history_length": 1, "terms": [{"name": "joint_pos_rel", "dim": 5}]}).reset(
            _inputs(0)
        )
    with pytest.raises(KeyError, match="term 'bogus' has no deployment implementation"):
        O.GroupBuilder("policy", {"history_length": 1, "terms": [{"name": "bogus", "dim": 1}]})


def test_future_frames_are_held_at_the_clip_end():
    x = _inputs(0.0)  # frame 4 of 8, offsets 0, 2, 5
    np.testing.assert_array_equal(x.future("joint_pos", "g1")[:, 0], [4, 6, 7])
    np.testing.assert_array_equal(O.command_lower_body(x), [4, 0, 6, 0, 7, 0])  # per frame: leg pos, leg vel
    with pytest.raises(KeyError, match="reference: has no 'smpl_joints_local'"):
        O.smpl_joints_multi_future(
            O.Inputs(
                x.state,
                x.ref,
                0,
                x.action,
                O.DeployContext(
                    x.ctx.default_joint_pos, 0, x.ctx.lower_body_joint_ids, {"smpl": np.array([0])}
                ),
            )
        )


def test_clip_selection_by_name_or_position():
    names = ["walk", "run", "3"]
    assert select_clips(names, None) == [0, 1, 2]
    assert select_clips(names, ["run", "0", 1, "3"]) == [1, 0, 1, 2]
    with pytest.raises(KeyError, match="clip 'jump' is not in the store"):
        select_clips(names, ["jump"])
    with pytest.raises(KeyError, match="clip #7: the store holds 3 clips"):
        select_clips(names, [7])


def test_vr_file_errors_name_the_array(tmp_path):
    meta = {"control_hz": 50.0}
    arrays = {
        f"{k}_{s}": np.zeros((5, 3 if s == "pos" else 4))
        for k in ("head", "left_wrist", "right_wrist")
        for s in ("pos", "quat")
    }
    arrays["head_quat"] = np.zeros((5, 3))
    np.savez(tmp_path / "v.npz", **arrays)
    with pytest.raises(ValueError, match=r"v.npz: head_quat has shape \(5, 3\), expected \(T>=2, 4\)"):
        vr_reference(tmp_path / "v.npz", meta)


def test_failure_checks_anchor_ori_is_the_squared_angle_and_adaptive_is_refused():
    from types import SimpleNamespace

    from sonic_ray.deploy.failures import FailureChecks

    meta = {
        "body_names": ["pelvis", "foot"],
        "anchor_body": "pelvis",
        "end_effector_bodies": ["foot"],
        "feet_bodies": ["foot"],
    }
    checks = FailureChecks({"anchor_ori": {"params": {"threshold": 1.0}}}, meta)
    ref = SimpleNamespace(data={}, at=lambda key, frame: np.array([1.0, 0.0, 0.0, 0.0]))

    def turned(angle):  # a pure heading turn: SONIC's strict form sees it
        q = np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])
        return SimpleNamespace(body_quat_w=np.stack([q, q]), body_pos_w=np.zeros((2, 3)))

    # 0.9 rad: 0.81 rad^2 <= 1; 1.1 rad: 1.21 rad^2 > 1
    assert checks.first_failure(turned(0.9), ref, 0) is None
    assert checks.first_failure(turned(1.1), ref, 0) == "anchor_ori"
    with pytest.raises(ValueError, match="adaptive"):
        FailureChecks({"anchor_pos": {"params": {"threshold": 0.15, "adaptive": True}}}, meta)
