"""References for deployment: clips of a motion store, or a file of VR 3-point targets.

A clip becomes the per-frame arrays `sonic_ray.deploy.observations.Reference` holds, computed the
way training computes them (MotionLib resampled to the control rate, torch FK of our robot model,
VR points and SMPL keypoints placed as the ONNX metadata says); `tests/deploy` checks them against
the training env's ReferenceTable. Only data loaders are used here (`sonic_ray.motion`,
`sonic_ray.robots`), never the env.

VR-target file (`.npz`, world frame, quaternions wxyz), one row per frame:
  head_pos, left_wrist_pos, right_wrist_pos (T,3): the metadata's `vr_points` (head point on the
      torso, hand points past the wrists); head_quat, left_wrist_quat, right_wrist_quat (T,4): the
      orientation of the body each point rides on (torso, left/right wrist-yaw link);
  fps (scalar, optional; default the control rate): resampled to the control rate when different;
  lower_body_joint_pos (T, J_legs) (optional): leg joint command in the metadata's lower-body
      order; without it the legs are asked to hold the default pose;
  anchor_pos (T,3), anchor_quat (T,4): the reference anchor's pose (the pelvis for SONIC's G1),
      required unless the anchor is the body the head point rides on (then the head pose gives it).
Resampling, velocities and the anchor-frame VR / root-frame SMPL features are
`sonic_ray.motion.frames`, the functions training's MotionLib and ReferenceTable use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from sonic_ray.deploy.observations import Reference
from sonic_ray.motion.frames import clip_velocity, resample_clip, smpl_joints_local, vr_local
from sonic_ray.motion.motion_lib import MotionLib
from sonic_ray.robots import PointSpec, TorchFK, load_model
from sonic_ray.utils.rotations import quat_apply, quat_normalize

VR_KEYS = ("head", "left_wrist", "right_wrist")


def points_from_metadata(items: Sequence[Mapping]) -> tuple[PointSpec, ...]:
    return tuple(
        PointSpec(str(p["name"]), str(p["body"]), tuple(float(v) for v in p["offset"])) for p in items
    )


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float64)


def motion_references(
    motion_lib, fk: TorchFK, meta: Mapping, clips: Sequence[str | int] | None = None
) -> list[Reference]:
    """One Reference per selected clip (names or store positions; None: every clip)."""
    robot = meta
    if list(motion_lib.joint_names) != list(robot["joint_names"]):
        raise ValueError(
            f"motion store joints {list(motion_lib.joint_names)} differ from the ONNX metadata's "
            f"joint_names {list(robot['joint_names'])}"
        )
    ids = select_clips(motion_lib.names, clips)
    anchor = list(fk.body_names).index(robot["anchor_body"])
    vr_points = points_from_metadata(robot["vr_points"])
    vr_table, smpl_table = (
        fk.point_table(vr_points),
        fk.point_table(points_from_metadata(robot["smpl_keypoints"])),
    )
    out = []
    for i in ids:
        frames = int(motion_lib.clip_frames[i])
        t = torch.arange(frames).to(torch.float32) / motion_lib.control_fps
        st = motion_lib.state(torch.full((frames,), i, dtype=torch.long), t)
        bp, bq = fk.forward(st["root_pos_w"], st["root_quat_w"], st["joint_pos"])
        smpl_w = st["smpl_joints"] if "smpl_joints" in st else fk.points(bp, bq, smpl_table)
        a_pos, a_quat = bp[:, anchor], bq[:, anchor]
        vr_pos_w, vr_quat_w = fk.points(bp, bq, vr_table), bq[:, vr_table[0]]
        vr_pos_local, vr_ori_local = vr_local(a_pos, a_quat, vr_pos_w, vr_quat_w)
        data = {
            k: _np(st[k])
            for k in (
                "root_pos_w",
                "root_quat_w",
                "root_lin_vel_w",
                "root_ang_vel_w",
                "joint_pos",
                "joint_vel",
            )
        }
        data.update(
            body_pos_w=_np(bp),
            body_quat_w=_np(bq),
            anchor_pos_w=_np(a_pos),
            anchor_quat_w=_np(a_quat),
            smpl_joints_local=_np(smpl_joints_local(smpl_w, st["root_quat_w"])),
            vr_pos_w=_np(vr_pos_w),
            vr_pos_local=_np(vr_pos_local),
            vr_ori_local=_np(vr_ori_local),
        )
        data["body_lin_vel_w"] = clip_velocity(data["body_pos_w"], [frames], motion_lib.control_fps)
        out.append(Reference(data, name=str(motion_lib.names[i]), index=int(motion_lib.store_index[i])))
    return out


def select_clips(names: Sequence[str], clips: Sequence[str | int] | None) -> list[int]:
    """Store positions of the requested clips (a name, or an integer position as text or int)."""
    if not clips:
        return list(range(len(names)))
    ids = []
    for c in clips:
        if isinstance(c, int) or (isinstance(c, str) and c.isdigit() and c not in names):
            k = int(c)
            if not 0 <= k < len(names):
                raise KeyError(f"clip #{k}: the store holds {len(names)} clips")
            ids.append(k)
        elif c in names:
            ids.append(list(names).index(c))
        else:
            raise KeyError(
                f"clip {c!r} is not in the store; clips: {list(names)[:20]}"
                f"{' ...' if len(names) > 20 else ''}"
            )
    return ids


def vr_reference(path: str | Path, meta: Mapping) -> Reference:
    """A Reference for the teleop encoder from a VR-target file (format in the module docstring)."""
    path = Path(path)
    try:
        f = np.load(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the VR-target file ({e})") from e
    need = [f"{k}_{s}" for k in VR_KEYS for s in ("pos", "quat")]
    missing = [k for k in need if k not in f.files]
    if missing:
        raise ValueError(
            f"{path}: missing arrays {missing}; a VR-target file holds {need} "
            "(world frame, wxyz), optional fps and lower_body_joint_pos"
        )
    fps = float(f["fps"]) if "fps" in f.files else float(meta["control_hz"])
    ctrl = float(meta["control_hz"])
    arr = {}
    for k in need:
        a = np.asarray(f[k], dtype=np.float64)
        width = 4 if k.endswith("quat") else 3
        if a.ndim != 2 or a.shape[1] != width or a.shape[0] < 2:
            raise ValueError(f"{path}: {k} has shape {a.shape}, expected (T>=2, {width})")
        arr[k] = resample_clip(a, fps, ctrl, quat=k.endswith("quat"))
    robot, cmd = meta, meta["command"]
    legs = np.asarray(cmd["lower_body_joint_ids"], dtype=np.int64)
    joint_pos = np.tile(
        np.asarray(robot["default_joint_pos"], dtype=np.float64), (arr["head_pos"].shape[0], 1)
    )
    if "lower_body_joint_pos" in f.files:
        lb = np.asarray(f["lower_body_joint_pos"], dtype=np.float64)
        if lb.ndim != 2 or lb.shape[1] != len(legs):
            raise ValueError(f"{path}: lower_body_joint_pos has shape {lb.shape}, expected (T, {len(legs)})")
        joint_pos[:, legs] = resample_clip(lb, fps, ctrl, quat=False)[: joint_pos.shape[0]]
    pos = torch.as_tensor(np.stack([arr[f"{k}_pos"] for k in VR_KEYS], axis=1))  # (T,3,3)
    quat = quat_normalize(torch.as_tensor(np.stack([arr[f"{k}_quat"] for k in VR_KEYS], axis=1)))
    a_pos, a_quat = _vr_anchor(f, path, robot, pos, quat, fps, ctrl)
    vr_pos_local, vr_ori_local = vr_local(a_pos, a_quat, pos, quat)
    data = {
        "joint_pos": joint_pos,
        "joint_vel": clip_velocity(joint_pos, [len(joint_pos)], ctrl),
        "anchor_pos_w": a_pos.numpy(),
        "anchor_quat_w": a_quat.numpy(),
        "vr_pos_w": pos.numpy(),
        "vr_pos_local": vr_pos_local.numpy(),
        "vr_ori_local": vr_ori_local.numpy(),
    }
    return Reference(data, name=path.stem)


def _vr_anchor(f, path, robot, pos, quat, fps, ctrl) -> tuple[torch.Tensor, torch.Tensor]:
    """(T,3), (T,4) reference anchor pose of a VR-target file: its anchor arrays, or the head body's
    pose when the head point rides on the anchor."""
    if robot["vr_points"][0]["body"] == robot["anchor_body"]:
        head_offset = torch.as_tensor(np.asarray(robot["vr_points"][0]["offset"], dtype=np.float64))
        return pos[:, 0] - quat_apply(quat[:, 0], head_offset.expand_as(pos[:, 0])), quat[:, 0]
    if "anchor_pos" not in f.files or "anchor_quat" not in f.files:
        raise ValueError(
            f"{path}: the anchor ({robot['anchor_body']}) is not the head point's body: "
            "the file needs anchor_pos (T,3) and anchor_quat (T,4)"
        )
    t = pos.shape[0]
    a_pos = resample_clip(np.asarray(f["anchor_pos"], dtype=np.float64), fps, ctrl, quat=False)[:t]
    a_quat = resample_clip(np.asarray(f["anchor_quat"], dtype=np.float64), fps, ctrl, quat=True)[:t]
    if a_pos.shape != (t, 3) or a_quat.shape != (t, 4):
        raise ValueError(
            f"{path}: anchor_pos / anchor_quat of shapes {a_pos.shape} / {a_quat.shape}, "
            f"expected ({t}, 3) / ({t}, 4) like the VR points"
        )
    return torch.as_tensor(a_pos), quat_normalize(torch.as_tensor(a_quat))


def vr_targets_from_reference(ref: Reference, meta: Mapping) -> dict[str, np.ndarray]:
    """The VR-target arrays a clip implies (for tests and for recording targets from a clip)."""
    robot = meta
    body_ids = [list(robot["body_names"]).index(p["body"]) for p in robot["vr_points"]]
    legs = np.asarray(meta["command"]["lower_body_joint_ids"], dtype=np.int64)
    out = {
        "fps": np.float64(meta["control_hz"]),
        "lower_body_joint_pos": ref.data["joint_pos"][:, legs],
        "anchor_pos": ref.data["anchor_pos_w"],
        "anchor_quat": ref.data["anchor_quat_w"],
    }
    for k, (name, b) in enumerate(zip(VR_KEYS, body_ids)):
        out[f"{name}_pos"] = ref.data["vr_pos_w"][:, k]
        out[f"{name}_quat"] = ref.data["body_quat_w"][:, b]
    return out


def load_references(
    store: str | Path, meta: Mapping, clips: Sequence[str | int] | None = None
) -> list[Reference]:
    """References of `clips` of a motion store at the metadata's control rate, with the metadata's
    robot (model from `sonic_ray.robots`, checked against the metadata's joint order)."""
    store = Path(store)
    if not store.is_file():
        raise FileNotFoundError(f"{store}: motion store not found")
    model, robot = load_model(meta["robot"])
    if list(robot.joint_names) != list(meta["joint_names"]):
        raise ValueError(
            f"robot {meta['robot']!r}: joints {list(robot.joint_names)} differ from the ONNX "
            f"metadata's {list(meta['joint_names'])}"
        )
    lib = MotionLib(store, control_fps=float(meta["control_hz"]))
    return motion_references(lib, TorchFK(model, robot), meta, clips)
