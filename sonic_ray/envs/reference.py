"""Every control-rate frame of a MotionLib shard with body poses AND body velocities, precomputed.

Why precompute: MotionLib's `body_state` gives poses only (FK per query). Rewards need body
velocities and the critic/tokenizers need future frames, every step, for every env. Running FK
per step (plus FK at t+dt for velocities) costs a Python loop over the bodies per call; a
gather from a table costs one indexing op. So FK runs once here over all frames, and body
velocities are finite differences of those poses by `sonic_ray.motion.frames` (central inside a
clip, one-sided at its ends, never across clips), the functions MotionLib uses for the root.

Memory: about 4 * (13 B + 2 J + 24*3 + 30) bytes per frame (≈ 1.9 kB for the G1): 1 hour of
motion at 50 Hz is ≈ 340 MB. A runner holds only its shard.
"""

from __future__ import annotations

import numpy as np
import torch

from sonic_ray.motion.frames import clip_angular_velocity, clip_velocity, smpl_joints_local, vr_local

# Keys computed from the stored root and joints and the anchor's chain of bodies alone (no full
# FK, no points, no body velocities): what `light_frames` gives, at a fraction of a full frame's cost.
# the robot's full state (what a reset writes into the simulator)
STATE_KEYS = ("root_pos_w", "root_quat_w", "root_lin_vel_w", "root_ang_vel_w", "joint_pos", "joint_vel")
LIGHT_KEYS = (*STATE_KEYS, "anchor_quat_w")


class FramePoints:
    """What `reference_frames` needs of the robot, built once: the FK, the anchor body's index and
    the VR / SMPL point tables."""

    def __init__(self, fk, *, anchor_body: str, vr_points, smpl_points):
        self.fk = fk
        self.anchor_body = anchor_body
        self.anchor = fk.body_names.index(anchor_body)
        self.vr_table = fk.point_table(vr_points)
        self.smpl_table = fk.point_table(smpl_points)


def frame_state(motion_lib, clip, local) -> dict[str, torch.Tensor]:
    """`motion_lib.state` at control-rate frames `local` (S,) of clips `clip` (S,): the root and
    joint states every reference row starts from."""
    clip, local = torch.as_tensor(clip), torch.as_tensor(local)
    return motion_lib.state(clip, local.to(torch.float32) / float(motion_lib.control_fps))


def reference_frames(
    motion_lib, points: FramePoints, clip, local, seg_frames, *, device="cpu", chunk: int = 8192, state=None
) -> dict[str, torch.Tensor]:
    """The reference rows of frames `local` (S,) of clips `clip` (S,) of `motion_lib`: the one
    implementation of how a reference frame is computed (the full table and the cached arena call
    it; the per-env windows call its pieces key by key: `frame_state`, `light_frames`, the FK,
    `frames.velocity_between`, `smpl_joints_local`, `vr_local`). The S rows are runs of consecutive
    frames of one clip each, `seg_frames` (R,) long (sum S): body velocities are finite differences
    inside a run, central inside, one-sided at its ends, so a run that is a whole clip gives the
    clip's velocities and a run extended by one frame each side (where the clip has one) gives
    exact velocities on its inner frames. `state`: `frame_state` of these frames when the caller
    has it. Returns the keys listed in ReferenceTable, each (S, ...)
    float32 on `device`."""
    fk, fps = points.fk, float(motion_lib.control_fps)
    parts: dict[str, list[torch.Tensor]] = {}
    vr_body_ids = points.vr_table[0]
    total = len(clip) if state is None else len(state["joint_pos"])
    for s in range(0, total, chunk):
        if state is None:
            st = frame_state(motion_lib, clip[s : s + chunk], local[s : s + chunk])
        else:
            st = {k: v[s : s + chunk] for k, v in state.items()}
        tables = (points.vr_table,) if "smpl_joints" in st else (points.vr_table, points.smpl_table)
        bp, bq, vr_pos, *smpl = fk.forward(
            st["root_pos_w"], st["root_quat_w"], st["joint_pos"], points=tables
        )
        st["body_pos_w"], st["body_quat_w"] = bp, bq
        st["anchor_quat_w"] = bq[:, points.anchor]
        st["vr_pos_w"] = vr_pos
        st["vr_quat_w"] = bq[:, vr_body_ids.to(bq.device)]
        st["smpl_joints_w"] = st.pop("smpl_joints") if "smpl_joints" in st else smpl[0]
        for k, v in st.items():
            parts.setdefault(k, []).append(v.to(device, torch.float32))
    d = {k: v[0] if len(v) == 1 else torch.cat(v) for k, v in parts.items()}
    seg_frames = np.asarray(seg_frames, dtype=np.int64)
    d["body_lin_vel_w"] = clip_velocity(d["body_pos_w"], seg_frames, fps)
    d["body_ang_vel_w"] = clip_angular_velocity(d["body_quat_w"], seg_frames, fps)
    _local_frames(d, points.anchor)
    return d


def light_frames(
    motion_lib, points: FramePoints, clip, local, *, device="cpu", state=None
) -> dict[str, torch.Tensor]:
    """The LIGHT_KEYS of frames `local` (S,) of clips `clip` (S,): the same values as
    `reference_frames` gives for those keys (the same state query, the anchor's pose from its own
    chain of bodies with the same arithmetic), without the full FK. `state`: as there."""
    st = dict(frame_state(motion_lib, clip, local) if state is None else state)
    _, st["anchor_quat_w"] = points.fk.forward(
        st["root_pos_w"], st["root_quat_w"], st["joint_pos"], only=points.anchor_body
    )
    return {k: st[k].to(device, torch.float32) for k in LIGHT_KEYS}


def _local_frames(d: dict, anchor: int) -> None:
    """Reference-only features the tokenizers read, once per frame instead of once per step:
    SMPL joints in their own root frame (pelvis joint at the origin, root rotation removed),
    VR points' positions and orientations (6-D) in the reference anchor frame."""
    d["smpl_joints_local"] = smpl_joints_local(d["smpl_joints_w"], d["root_quat_w"])
    d["vr_pos_local"], d["vr_ori_local"] = vr_local(
        d["body_pos_w"][:, anchor], d["body_quat_w"][:, anchor], d["vr_pos_w"], d["vr_quat_w"]
    )


class ReferenceTable:
    """All frames of `motion_lib` at its control rate, as (S, ...) tensors on `device`.

    Keys of `data`: root_pos_w (S,3), root_quat_w (S,4), root_lin_vel_w, root_ang_vel_w (S,3),
    joint_pos, joint_vel (S,J), body_pos_w, body_lin_vel_w, body_ang_vel_w (S,B,3), body_quat_w
    (S,B,4), anchor_quat_w (S,4), vr_pos_w (S,P,3), vr_quat_w (S,P,4), smpl_joints_w (S,24,3), and
    the robot-independent tokenizer features smpl_joints_local (S,24,3), vr_pos_local (S,P,3),
    vr_ori_local (S,P,6) (see `_local_frames`).
    SMPL joints come from the store when every clip has them, else from the robot's
    `smpl_keypoints` (points on the robot, an approximate correspondence).
    clip_start / clip_frames (C,) long index clips into the S frames.
    """

    def __init__(
        self, motion_lib, fk, *, anchor_body: str, vr_points, smpl_points, device="cpu", chunk: int = 8192
    ):
        self.device = torch.device(device)
        self.fps = float(motion_lib.control_fps)
        frames_np = motion_lib.clip_frames.cpu().numpy().astype(np.int64)
        self.clip_frames = torch.as_tensor(frames_np, device=self.device)
        self.store_index = motion_lib.store_index.cpu()  # (C,) each clip's index in the whole store
        self.clip_start = torch.as_tensor(
            np.concatenate(([0], np.cumsum(frames_np)[:-1])), device=self.device
        )
        clip = np.repeat(np.arange(len(frames_np)), frames_np)
        local = np.arange(int(frames_np.sum())) - np.repeat(self.clip_start.cpu().numpy(), frames_np)
        points = FramePoints(fk, anchor_body=anchor_body, vr_points=vr_points, smpl_points=smpl_points)
        self.data = reference_frames(
            motion_lib, points, clip, local, frames_np, device=self.device, chunk=chunk
        )
        self.body_names = tuple(fk.body_names)

    @property
    def num_clips(self) -> int:
        return int(self.clip_frames.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.data["joint_pos"].shape[0])

    def ensure(self, clips: torch.Tensor) -> None:
        """Every clip is always here (`CachedReference.ensure` computes the missing ones)."""

    def row_base(
        self, clip: torch.Tensor, frame: torch.Tensor, reach: int, full_reach: int, ahead: int = 0
    ) -> torch.Tensor:
        """(N,) row of frame 0 of each env's clip (N,): env n reads frame f at row base[n] + f.
        A full table (or a cached arena) holds whole clips, so frame and the reaches do not matter;
        `WindowReference.row_base` moves windows so frames [frame, frame + reach] are held."""
        return self.clip_start[clip]

    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.data.values())
