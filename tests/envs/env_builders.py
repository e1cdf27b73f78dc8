"""Hand-built MDP states for term tests: a namespace with the attributes terms read.

`perfect_state` is a robot exactly on its reference (every tracking error zero); tests perturb
one quantity and check the term against the kernel worked out by hand.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from sonic_ray.robots import G1
from sonic_ray.utils.rotations import quat_from_axis_angle, quat_normalize

BODY_NAMES = G1.body_names


def random_quats(*shape, generator) -> torch.Tensor:
    return quat_normalize(torch.randn(*shape, 4, generator=generator))


def yaw(angle: float, n: int) -> torch.Tensor:
    return quat_from_axis_angle(torch.tensor([0.0, 0.0, 1.0]).expand(n, 3), torch.full((n,), angle))


def perfect_state(n: int = 4, seed: int = 0) -> SimpleNamespace:
    g = torch.Generator().manual_seed(seed)
    b, j = len(BODY_NAMES), G1.num_joints
    anchor = BODY_NAMES.index(G1.anchor_body)
    body_pos = torch.randn(n, b, 3, generator=g)
    body_quat = random_quats(n, b, generator=g)
    lin, ang = torch.randn(n, b, 3, generator=g), torch.randn(n, b, 3, generator=g)

    def body_ids(names):
        return torch.tensor([BODY_NAMES.index(x) for x in names], dtype=torch.long)

    cmd = SimpleNamespace(
        body_names=BODY_NAMES,
        body_ids=body_ids,
        anchor_index=anchor,
        ref_body_pos_w=body_pos.clone(),
        ref_body_quat_w=body_quat.clone(),
        ref_body_lin_vel_w=lin.clone(),
        ref_body_ang_vel_w=ang.clone(),
        ref_body_pos_rel_w=body_pos.clone(),
        ref_body_quat_rel_w=body_quat.clone(),
        ref_anchor_pos_w=body_pos[:, anchor].clone(),
        ref_anchor_quat_w=body_quat[:, anchor].clone(),
        robot_anchor_pos_w=body_pos[:, anchor].clone(),
        robot_anchor_quat_w=body_quat[:, anchor].clone(),
        frame=torch.zeros(n, dtype=torch.long),
        last_frame=torch.full((n,), 10, dtype=torch.long),
        ref_root_height_ema=torch.full((n,), 0.79),
    )
    robot = SimpleNamespace(
        root_pos_w=body_pos[:, 0].clone(),
        root_quat_w=body_quat[:, 0].clone(),
        root_lin_vel_w=lin[:, 0].clone(),
        root_ang_vel_w=ang[:, 0].clone(),
        joint_pos=torch.tensor(G1.default_joint_pos, dtype=torch.float32).expand(n, j).clone(),
        joint_vel=torch.zeros(n, j),
        body_pos_w=body_pos.clone(),
        body_quat_w=body_quat.clone(),
        body_lin_vel_w=lin.clone(),
        body_ang_vel_w=ang.clone(),
        contact_forces=torch.zeros(n, b, 3),
    )
    lo = torch.tensor(G1.joint_lower, dtype=torch.float32)
    hi = torch.tensor(G1.joint_upper, dtype=torch.float32)
    point_ids, point_offsets = G1.point_table(G1.reward_points)
    return SimpleNamespace(
        cmd=cmd,
        robot=robot,
        action=torch.zeros(n, j),
        prev_action=torch.zeros(n, j),
        joint_soft_lower=lo,
        joint_soft_upper=hi,
        prev_joint_vel=torch.zeros(n, j),
        step_dt=0.02,
        joint_names=G1.joint_names,
        joint_offsets=torch.zeros(n, j),
        tracked_bodies=G1.tracked_body_names,
        reward_point_ids=torch.as_tensor(point_ids),
        reward_point_offsets=torch.tensor(point_offsets, dtype=torch.float32),
        episode_length=torch.zeros(n, dtype=torch.long),
        max_episode_length=500,
        default_joint_pos=torch.tensor(G1.default_joint_pos, dtype=torch.float32),
        feet_bodies=G1.feet_bodies,
        end_effector_bodies=G1.end_effector_bodies,
        undesired_contact_bodies=G1.undesired_contact_bodies,
        num_envs=n,
        action_dim=j,
        generator=g,
    )


def tiny_store(path, *, clips=3, seconds=(1.0, 1.6, 2.2), fps=50.0, seed=0, smpl=False):
    """A small G1 store (milliseconds to write): standing clips near the default pose with small
    joint sways and a slow root drift/turn, so physics episodes neither fall nor end at once.
    smpl: with stored SMPL joints (random points near the root)."""
    import numpy as np

    from sonic_ray.motion.store import MotionClip, write_store

    rng = np.random.default_rng(seed)
    lo, hi, default = (
        np.asarray(a, dtype=np.float64) for a in (G1.joint_lower, G1.joint_upper, G1.default_joint_pos)
    )
    out = []
    for c in range(clips):
        t = np.arange(int(seconds[c % len(seconds)] * fps) + 1) / fps
        yaw = 0.2 * t + rng.uniform(-1, 1)
        quat = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
        root = np.stack([0.1 * t, 0.02 * np.sin(t), np.full_like(t, G1.default_root_pos[2])], axis=1)
        sway = 0.05 * np.sin(2.0 * t[:, None] + rng.uniform(0, 6.3, G1.num_joints))
        joints = np.clip(default + sway, lo + 0.01, hi - 0.01)
        out.append(
            MotionClip(
                f"tiny{c}",
                "test",
                fps,
                root.astype(np.float32),
                quat.astype(np.float32),
                joints.astype(np.float32),
                (root[:, None] + rng.normal(0, 0.3, (len(t), 24, 3))).astype(np.float32) if smpl else None,
            )
        )
    write_store(path, out, joint_names=G1.joint_names)
    return path


def reference_table(path, device="cpu"):
    """(ReferenceTable, TorchFK) over the store at path, with the G1's points."""
    from sonic_ray.envs.reference import ReferenceTable
    from sonic_ray.motion.motion_lib import MotionLib
    from sonic_ray.robots import TorchFK, load_model

    model, robot = load_model("g1")
    fk = TorchFK(model, robot, device=device)
    lib = MotionLib(path, control_fps=50.0, device=device)
    return (
        ReferenceTable(
            lib,
            fk,
            anchor_body=robot.anchor_body,
            vr_points=robot.vr_points,
            smpl_points=robot.smpl_keypoints,
            device=device,
        ),
        fk,
        lib,
    )
