"""Small writers for each supported file format, mirroring the importers.

They exist so round-trip tests (and the benchmark) produce files the way the upstream tools
lay them out; they are not a conversion tool. Each takes a `MotionClip` with wxyz root quats.
"""

from __future__ import annotations

import pickle

import numpy as np
from scipy.spatial.transform import Rotation

from sonic_ray.motion.importers.tables import BONES_ROOT
from sonic_ray.motion.store import MotionClip
from sonic_ray.utils.rotations import wxyz_to_xyzw


def sonic_clip_dict(clip: MotionClip) -> dict:
    """SONIC/PHC layout: root_trans_offset, root_rot (xyzw), dof, pose_aa, fps, smpl_joints."""
    t = clip.num_frames
    d = {
        "root_trans_offset": np.asarray(clip.root_pos),
        "root_rot": wxyz_to_xyzw(np.asarray(clip.root_quat)),
        "dof": np.asarray(clip.joint_pos),
        "pose_aa": np.zeros((t, 24, 3), dtype=np.float32),
        "fps": int(round(clip.fps)) if float(clip.fps).is_integer() else float(clip.fps),
    }
    if clip.smpl_joints is not None:
        d["smpl_joints"] = np.asarray(clip.smpl_joints)
    return d


def write_sonic_pkl(path, clips: list[MotionClip], *, use_joblib: bool = True) -> None:
    """{clip name: clip dict}, via joblib.dump (as SONIC does) or plain pickle."""
    data = {c.name: sonic_clip_dict(c) for c in clips}
    if use_joblib:
        import joblib

        joblib.dump(data, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)


def write_gmr_pkl(path, clip: MotionClip) -> None:
    data = {
        "fps": float(clip.fps),
        "root_pos": np.asarray(clip.root_pos),
        "root_rot": wxyz_to_xyzw(np.asarray(clip.root_quat)),
        "dof_pos": np.asarray(clip.joint_pos),
    }
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)


def write_lafan_csv(path, clip: MotionClip) -> None:
    data = np.concatenate([clip.root_pos, wxyz_to_xyzw(np.asarray(clip.root_quat)), clip.joint_pos], axis=1)
    np.savetxt(path, data, delimiter=",", fmt="%.9g")


def write_bones_csv(path, clip: MotionClip, *, joint_names) -> None:
    euler = Rotation.from_quat(wxyz_to_xyzw(np.asarray(clip.root_quat, dtype=np.float64))).as_euler(
        "xyz", degrees=True
    )
    t = clip.num_frames
    data = np.concatenate(
        [np.arange(t)[:, None], np.asarray(clip.root_pos) * 100.0, euler, np.rad2deg(clip.joint_pos)], axis=1
    )
    header = ",".join(["Frame", *BONES_ROOT, *(f"{j}_dof" for j in joint_names)])
    np.savetxt(path, data, delimiter=",", fmt="%.10g", header=header, comments="")


def write_mjlab_npz(path, clip: MotionClip, *, body_pos_w: np.ndarray, body_quat_w: np.ndarray) -> None:
    """body_pos_w (T,B,3) / body_quat_w (T,B,4) wxyz with body 0 = root; velocities by differences."""
    dt = 1.0 / clip.fps
    np.savez(
        path,
        fps=np.array([clip.fps]),
        joint_pos=np.asarray(clip.joint_pos, dtype=np.float32),
        joint_vel=np.gradient(np.asarray(clip.joint_pos, dtype=np.float32), dt, axis=0),
        body_pos_w=np.asarray(body_pos_w, dtype=np.float32),
        body_quat_w=np.asarray(body_quat_w, dtype=np.float32),
        body_lin_vel_w=np.gradient(np.asarray(body_pos_w, dtype=np.float32), dt, axis=0),
        body_ang_vel_w=np.zeros_like(body_pos_w, dtype=np.float32),
    )
