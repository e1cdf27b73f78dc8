"""What an exported ONNX file says about itself: metadata as ONNX `metadata_props` with JSON values.

Everything a deployment needs to run the file without the training code travels inside it:

- kind ("policy" | "encoder" | "decoder"), encoder (name or null), inputs / outputs (name, shape,
  what they hold; in the model's input order), action (how an action becomes joint targets);
- robot, joint_names (the order of every per-joint array and of the action), kp, kd,
  effort_limit, default_joint_pos, action_scale, joint_lower, joint_upper, armature,
  body_names, anchor_body, root_body, feet_bodies, end_effector_bodies, default_root_pos,
  vr_points and smpl_keypoints ([{name, body, offset}]);
- control_hz, control_dt, physics_dt, decimation;
- observations: {group: {history_length, enable_corruption, frame_dim, dim, terms: [{name, dim,
  noise, scale}]}} for each group an input reads, terms in concatenation order, history oldest
  first; command: future_frame_offsets {g1, smpl}, future_dt..., lower_body_joint_ids/names;
- fsq {levels, num_tokens, dim}, normalizers, eval_terminations, source (checkpoint, iteration,
  experiment), check (max |onnx - torch| on random inputs).

`FORMAT` changes whenever a key changes meaning; readers check it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sonic_ray.utils.io import atomic_write

FORMAT = "sonic-ray-onnx/1"
REQUIRED_KEYS = (
    "format",
    "kind",
    "inputs",
    "outputs",
    "joint_names",
    "kp",
    "kd",
    "default_joint_pos",
    "action_scale",
    "control_hz",
    "physics_dt",
    "decimation",
    "observations",
)


class MetadataError(ValueError):
    """An ONNX file without our metadata, or with a key missing or unreadable; names the file and key."""


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def set_metadata(model, meta: Mapping[str, Any]) -> None:
    """Replace `model.metadata_props` with `meta`, each value JSON-encoded (sorted keys: stable bytes)."""
    del model.metadata_props[:]
    for key in sorted(meta):
        entry = model.metadata_props.add()
        entry.key = str(key)
        entry.value = json.dumps(_jsonable(meta[key]), sort_keys=True)


def read_metadata(source) -> dict[str, Any]:
    """The metadata of an ONNX file (path) or ModelProto, decoded; checks format and required keys."""
    import onnx

    name = str(source) if not hasattr(source, "metadata_props") else "<model>"
    if hasattr(source, "metadata_props"):
        model = source
    else:
        path = Path(source)
        if not path.is_file():
            raise MetadataError(f"{path}: no such ONNX file")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # onnx raises DecodeError / ValueError variants
            raise MetadataError(f"{path}: not a readable ONNX file ({e})") from e
    meta = {}
    for p in model.metadata_props:
        try:
            meta[p.key] = json.loads(p.value)
        except json.JSONDecodeError as e:
            raise MetadataError(f"{name}: metadata key {p.key!r} is not JSON ({e})") from e
    if meta.get("format") != FORMAT:
        raise MetadataError(
            f"{name}: metadata format {meta.get('format')!r}, expected {FORMAT!r} "
            "(export it with `sonic-ray export`)"
        )
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise MetadataError(f"{name}: metadata lacks {missing}")
    return meta


def save_atomic(model, path: str | os.PathLike) -> Path:
    """Serialize `model` to `path` atomically (temp file beside it, fsync, rename)."""
    return atomic_write(path, model.SerializeToString())


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def robot_metadata(robot) -> dict[str, Any]:
    """The per-robot keys, from a `sonic_ray.robots.RobotSpec`."""
    pts = lambda ps: [{"name": p.name, "body": p.body, "offset": list(p.offset)} for p in ps]  # noqa: E731
    return {
        "robot": robot.name,
        "joint_names": list(robot.joint_names),
        "kp": robot.kp,
        "kd": robot.kd,
        "effort_limit": robot.effort_limit,
        "armature": robot.armature,
        "default_joint_pos": robot.default_joint_pos,
        "action_scale": robot.action_scale,
        "joint_lower": robot.joint_lower,
        "joint_upper": robot.joint_upper,
        "body_names": list(robot.body_names),
        "anchor_body": robot.anchor_body,
        "root_body": robot.root_body,
        "feet_bodies": list(robot.feet_bodies),
        "end_effector_bodies": list(robot.end_effector_bodies),
        "default_root_pos": list(robot.default_root_pos),
        "vr_points": pts(robot.vr_points),
        "smpl_keypoints": pts(robot.smpl_keypoints),
    }


def ort_session(model_bytes_or_path, *, threads: int = 1):
    """An ONNX Runtime CPU session over a model (bytes or path) with `threads` intra/inter-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = threads
    src = model_bytes_or_path if isinstance(model_bytes_or_path, bytes) else str(model_bytes_or_path)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
