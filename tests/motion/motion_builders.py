"""Shared builders for motion tests: the G1 joint order and synthetic clips."""

from __future__ import annotations

import numpy as np

from sonic_ray.motion.store import MotionClip

_SIDE_LEG = ["hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll"]
_SIDE_ARM = [
    "shoulder_pitch",
    "shoulder_roll",
    "shoulder_yaw",
    "elbow",
    "wrist_roll",
    "wrist_pitch",
    "wrist_yaw",
]
G1_JOINTS = (
    [f"left_{j}_joint" for j in _SIDE_LEG]
    + [f"right_{j}_joint" for j in _SIDE_LEG]
    + ["waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint"]
    + [f"left_{j}_joint" for j in _SIDE_ARM]
    + [f"right_{j}_joint" for j in _SIDE_ARM]
)
assert len(G1_JOINTS) == 29
G1_LOWER = np.full(29, -2.5)
G1_UPPER = np.full(29, 2.5)


def make_clip(name="clip", *, frames=40, fps=30.0, seed=0, smpl=False, source="synthetic") -> MotionClip:
    """A smooth random clip: drifting root, yawing unit quaternion, joints inside +-1 rad."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    yaw = 0.3 * t + rng.uniform(-1, 1)
    quat = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
    root = np.stack([0.5 * t, 0.1 * np.sin(t), 0.78 + 0.01 * np.cos(3 * t)], axis=1)
    phase = rng.uniform(0, 2 * np.pi, 29)
    joints = 0.8 * np.sin(2.0 * t[:, None] + phase[None, :])
    return MotionClip(
        name=name,
        source=source,
        fps=fps,
        root_pos=root.astype(np.float32),
        root_quat=quat.astype(np.float32),
        joint_pos=joints.astype(np.float32),
        smpl_joints=rng.normal(size=(frames, 24, 3)).astype(np.float32) if smpl else None,
    )


def toy_fk(root_pos, root_quat, joint_pos):
    """A stand-in kinematic tree for the FK check (the real G1 FK lives in sonic_ray.robots):
    body 0 is the root, body k>0 sits at root + R(root) @ (0.1 k, 0, joint_pos[:, k]). (T,B=4,3)."""
    from scipy.spatial.transform import Rotation

    q = np.asarray(root_quat, dtype=np.float64)
    rot = Rotation.from_quat(q[:, [1, 2, 3, 0]])
    bodies = [np.asarray(root_pos, dtype=np.float64)]
    for k in range(1, 4):
        local = np.stack([np.full(len(q), 0.1 * k), np.zeros(len(q)), np.asarray(joint_pos)[:, k]], axis=1)
        bodies.append(bodies[0] + rot.apply(local))
    return np.stack(bodies, axis=1)
