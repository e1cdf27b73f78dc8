"""CSV motions: Unitree LAFAN1-G1 (no header, 36 numeric columns) and BONES-SEED G1 (header).

LAFAN1-G1: root xyz (m), root quat xyzw, 29 joint angles (rad) in G1 order; 30 fps unless told.
BONES-SEED: `Frame`, `root_translateX/Y/Z` (cm), `root_rotateX/Y/Z` (degrees, extrinsic xyz
Euler), then `<joint>_dof` per joint (degrees), 120 fps. Its columns are named, so we map them to
the store's joint order by name rather than trusting their position.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from sonic_ray.motion.store import MotionClip
from sonic_ray.motion.validate import ClipRejected
from sonic_ray.utils.rotations import xyzw_to_wxyz

LAFAN_FPS = 30.0
BONES_FPS = 120.0
BONES_ROOT = (
    "root_translateX",
    "root_translateY",
    "root_translateZ",
    "root_rotateX",
    "root_rotateY",
    "root_rotateZ",
)


def _numeric(path, skiprows: int) -> np.ndarray:
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=skiprows, ndmin=2, dtype=np.float64)
    except ValueError as e:
        raise ClipRejected(str(path), "csv", f"non-numeric data ({e})") from None
    if data.shape[0] == 0:
        raise ClipRejected(str(path), "frames", "no data rows")
    return data


def load_lafan_csv(path, *, name: str, num_joints: int, fps: float | None = None) -> MotionClip:
    data = _numeric(path, 0)
    if data.shape[1] != 7 + num_joints:
        raise ClipRejected(
            str(path),
            "columns",
            f"{data.shape[1]} columns, expected {7 + num_joints} (xyz, quat xyzw, joints)",
        )
    return MotionClip(
        name=name,
        source=str(path),
        format="lafan_csv",
        fps=LAFAN_FPS if fps is None else fps,
        root_pos=data[:, :3],
        root_quat=xyzw_to_wxyz(data[:, 3:7]),
        joint_pos=data[:, 7:],
    )


def load_bones_csv(path, *, name: str, joint_names, fps: float | None = None) -> MotionClip:
    with open(path, encoding="utf-8") as f:
        header = [h.strip() for h in f.readline().split(",")]
    col = {h: i for i, h in enumerate(header)}
    wanted = list(BONES_ROOT) + [f"{j}_dof" for j in joint_names]
    missing = [w for w in wanted if w not in col]
    if missing:
        raise ClipRejected(
            str(path), "header", f"missing column(s) {missing[:5]}{'...' if len(missing) > 5 else ''}"
        )
    data = _numeric(path, 1)
    if data.shape[1] != len(header):
        raise ClipRejected(str(path), "columns", f"{data.shape[1]} data columns, header has {len(header)}")
    root = data[:, [col[c] for c in BONES_ROOT]]
    quat_xyzw = Rotation.from_euler("xyz", root[:, 3:], degrees=True).as_quat()
    return MotionClip(
        name=name,
        source=str(path),
        format="bones_csv",
        fps=BONES_FPS if fps is None else fps,
        root_pos=root[:, :3] / 100.0,
        root_quat=xyzw_to_wxyz(quat_xyzw),
        joint_pos=np.deg2rad(data[:, [col[f"{j}_dof"] for j in joint_names]]),
    )
