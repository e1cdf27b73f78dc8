"""Observations rebuilt for deployment from a robot's raw state and a reference, in numpy.

Why a second implementation of the observation terms: a deployed policy runs next to a robot (or a
plain MuJoCo loop), not inside `TrackingEnv`; it gets joint encoders, an IMU and forward
kinematics, and the ONNX file's metadata says which terms, in which order, with which history.
This module reads only those: no torch, no training code. `tests/deploy` holds every term here
to the training env's (`sonic_ray.envs.observations`) on the same MuJoCo state, within 1e-5.

Conventions are the env's: quaternions wxyz, `_w` world, `_b` in the robot anchor's frame,
orientations as the first two rotation-matrix columns (6 numbers), history oldest first and a
reset filling every history slot with the first frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mujoco
import numpy as np

_DOWN = np.array([0.0, 0.0, -1.0])


# ---- numpy quaternion helpers (wxyz, MuJoCo's conventions; leading dims broadcast) --------------
def quat_conj(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        axis=-1,
    )


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.cross without its axis bookkeeping (which dominates on the few vectors used here)."""
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack((ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx), axis=-1)


def quat_apply(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    xyz, w = q[..., 1:], q[..., :1]
    t = 2.0 * _cross(xyz, v)
    return v + w * t + _cross(xyz, t)


def quat_apply_inverse(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    return quat_apply(quat_conj(q), v)


def quat_to_tan_norm(q: np.ndarray) -> np.ndarray:
    """(..., 4) -> (..., 6): first two columns of the rotation matrix."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    c0 = np.stack((1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)), axis=-1)
    c1 = np.stack((2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)), axis=-1)
    return np.concatenate((c0, c1), axis=-1)


def yaw_quat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    zero = np.zeros_like(yaw)
    return np.stack((np.cos(yaw / 2), zero, zero, np.sin(yaw / 2)), axis=-1)


def _rel_quat(frame_q: np.ndarray, q: np.ndarray) -> np.ndarray:
    """q (..., 4) expressed in the frame of frame_q (4,)."""
    return quat_mul(np.broadcast_to(quat_conj(frame_q), q.shape), q)


# ---- robot state and reference ------------------------------------------------------------------
@dataclass
class RobotState:
    """One robot's state as sensors + forward kinematics give it (float64, spec order).

    root_quat_w (4,) IMU orientation; root_ang_vel_b (3,) gyro (root frame); root_lin_vel_w (3,)
    (critic only: a real robot does not measure it); joint_pos, joint_vel (J,); body_pos_w (B,3),
    body_quat_w (B,4) from FK (the actor reads only the anchor's orientation).
    """

    root_quat_w: np.ndarray
    root_lin_vel_w: np.ndarray
    root_ang_vel_b: np.ndarray
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    body_pos_w: np.ndarray
    body_quat_w: np.ndarray


def mujoco_body_ids(model: mujoco.MjModel, body_names) -> np.ndarray:
    """(B,) MuJoCo body ids of `body_names` (the metadata's order); a missing body is an error."""
    ids = []
    for n in body_names:
        i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)
        if i < 0:
            raise KeyError(f"the MuJoCo model has no body {n!r} named in the ONNX metadata")
        ids.append(i)
    return np.asarray(ids, dtype=np.int64)


def robot_state_from_mujoco(model: mujoco.MjModel, data: mujoco.MjData, body_ids: np.ndarray) -> RobotState:
    """Raw MuJoCo state -> RobotState. Runs `mj_kinematics` first, because `mj_step` leaves
    xpos/xquat at the pre-integration state. The free joint's qvel is world-frame linear velocity
    of the root origin and root-frame angular velocity (the gyro reading)."""
    mujoco.mj_kinematics(model, data)
    return RobotState(
        root_quat_w=data.qpos[3:7].copy(),
        root_lin_vel_w=data.qvel[0:3].copy(),
        root_ang_vel_b=data.qvel[3:6].copy(),
        joint_pos=data.qpos[7:].copy(),
        joint_vel=data.qvel[6:].copy(),
        body_pos_w=data.xpos[body_ids].copy(),
        body_quat_w=data.xquat[body_ids].copy(),
    )


class Reference:
    """A reference motion at the control rate, per-frame arrays (T, ...) float64.

    Keys the terms read: joint_pos, joint_vel (T,J); root_quat_w (T,4); anchor_pos_w (T,3),
    anchor_quat_w (T,4); smpl_joints_local (T,24,3) (each frame in its own root frame);
    vr_pos_local (T,P,3), vr_ori_local (T,P,6) (in the reference anchor frame). Metrics and
    failure checks also read body_pos_w (T,B,3), body_quat_w (T,B,4). A source that lacks a key (a
    VR-target file has no SMPL joints) cannot drive the terms that read it: asking is an error
    naming the key. Future frames are held at the last frame, as in training.
    """

    def __init__(self, data: Mapping[str, np.ndarray], *, name: str = "reference", index: int | None = None):
        self.data = {k: np.asarray(v, dtype=np.float64) for k, v in data.items()}
        self.name, self.index = name, index  # index: the clip's position in its motion store, if any
        lengths = {k: v.shape[0] for k, v in self.data.items()}
        if not lengths or len(set(lengths.values())) != 1:
            raise ValueError(f"{name}: every array needs the same number of frames, got {lengths}")
        self.num_frames = int(next(iter(lengths.values())))

    def at(self, key: str, frame: int) -> np.ndarray:
        return self._get(key)[min(frame, self.num_frames - 1)]

    def future(self, key: str, frame: int, offsets: np.ndarray) -> np.ndarray:
        """(F, ...) the key at frame + offsets, held at the last frame."""
        return self._get(key)[np.minimum(frame + offsets, self.num_frames - 1)]

    def _get(self, key: str) -> np.ndarray:
        try:
            return self.data[key]
        except KeyError:
            raise KeyError(f"{self.name}: has no {key!r} (holds {sorted(self.data)})") from None


@dataclass(frozen=True)
class DeployContext:
    """Facts the terms need besides state and reference, all from the ONNX metadata."""

    default_joint_pos: np.ndarray  # (J,)
    anchor_index: int  # anchor body's position in body_names
    lower_body_joint_ids: np.ndarray  # (J_legs,)
    future_offsets: Mapping[str, np.ndarray]  # horizon name ("g1", "smpl") -> (F,) frame offsets

    @classmethod
    def from_metadata(cls, meta: Mapping) -> DeployContext:
        cmd = meta["command"]
        return cls(
            default_joint_pos=np.asarray(meta["default_joint_pos"], dtype=np.float64),
            anchor_index=list(meta["body_names"]).index(meta["anchor_body"]),
            lower_body_joint_ids=np.asarray(cmd["lower_body_joint_ids"], dtype=np.int64),
            future_offsets={k: np.asarray(v, dtype=np.int64) for k, v in cmd["future_frame_offsets"].items()},
        )


@dataclass
class Inputs:
    """What one observation frame is computed from."""

    state: RobotState
    ref: Reference
    frame: int
    action: np.ndarray  # (A,) the action applied this step (zeros after a reset)
    ctx: DeployContext

    @property
    def anchor_quat(self) -> np.ndarray:
        return self.state.body_quat_w[self.ctx.anchor_index]

    @property
    def anchor_pos(self) -> np.ndarray:
        return self.state.body_pos_w[self.ctx.anchor_index]

    def future(self, key: str, horizon: str) -> np.ndarray:
        return self.ref.future(key, self.frame, self.ctx.future_offsets[horizon])


# ---- terms: name -> fn(Inputs) -> (k,), same names and meaning as sonic_ray/envs/observations.py --
def projected_gravity(x: Inputs) -> np.ndarray:
    return quat_apply_inverse(x.state.root_quat_w, _DOWN)


def base_lin_vel(x: Inputs) -> np.ndarray:
    return quat_apply_inverse(x.state.root_quat_w, x.state.root_lin_vel_w)


def base_ang_vel(x: Inputs) -> np.ndarray:
    return x.state.root_ang_vel_b


def joint_pos_rel(x: Inputs) -> np.ndarray:
    return x.state.joint_pos - x.ctx.default_joint_pos


def joint_vel_rel(x: Inputs) -> np.ndarray:
    return x.state.joint_vel


def last_action(x: Inputs) -> np.ndarray:
    return x.action


def motion_anchor_pos_b(x: Inputs) -> np.ndarray:
    return quat_apply_inverse(x.anchor_quat, x.ref.at("anchor_pos_w", x.frame) - x.anchor_pos)


def motion_anchor_ori_b(x: Inputs) -> np.ndarray:
    return quat_to_tan_norm(_rel_quat(x.anchor_quat, x.ref.at("anchor_quat_w", x.frame)))


def robot_body_pos_b(x: Inputs) -> np.ndarray:
    rel = x.state.body_pos_w - x.anchor_pos
    return quat_apply_inverse(np.broadcast_to(x.anchor_quat, x.state.body_quat_w.shape), rel).ravel()


def robot_body_ori_b(x: Inputs) -> np.ndarray:
    return quat_to_tan_norm(_rel_quat(x.anchor_quat, x.state.body_quat_w)).ravel()


def command_multi_future(x: Inputs) -> np.ndarray:
    return np.concatenate((x.future("joint_pos", "g1"), x.future("joint_vel", "g1")), axis=-1).ravel()


def motion_anchor_ori_b_multi_future(x: Inputs) -> np.ndarray:
    return quat_to_tan_norm(_rel_quat(x.anchor_quat, x.future("anchor_quat_w", "g1"))).ravel()


def smpl_joints_multi_future(x: Inputs) -> np.ndarray:
    return x.future("smpl_joints_local", "smpl").ravel()


def smpl_root_ori_b_multi_future(x: Inputs) -> np.ndarray:
    return quat_to_tan_norm(_rel_quat(x.anchor_quat, x.future("root_quat_w", "smpl"))).ravel()


def command_lower_body(x: Inputs) -> np.ndarray:
    ids = x.ctx.lower_body_joint_ids
    jp, jv = x.future("joint_pos", "g1")[:, ids], x.future("joint_vel", "g1")[:, ids]
    return np.concatenate((jp, jv), axis=-1).ravel()


def vr_3point_pos_local(x: Inputs) -> np.ndarray:
    return x.ref.at("vr_pos_local", x.frame).ravel()


def vr_3point_ori_local(x: Inputs) -> np.ndarray:
    return x.ref.at("vr_ori_local", x.frame).ravel()


TERMS: dict[str, Callable[[Inputs], np.ndarray]] = {
    f.__name__: f
    for f in (
        projected_gravity,
        base_lin_vel,
        base_ang_vel,
        joint_pos_rel,
        joint_vel_rel,
        last_action,
        motion_anchor_pos_b,
        motion_anchor_ori_b,
        robot_body_pos_b,
        robot_body_ori_b,
        command_multi_future,
        motion_anchor_ori_b_multi_future,
        smpl_joints_multi_future,
        smpl_root_ori_b_multi_future,
        command_lower_body,
        vr_3point_pos_local,
        vr_3point_ori_local,
    )
}


def term(name: str) -> Callable[[Inputs], np.ndarray]:
    if name not in TERMS:
        raise KeyError(
            f"observation term {name!r} has no deployment implementation in "
            f"sonic_ray/deploy/observations.py; known: {sorted(TERMS)}"
        )
    return TERMS[name]


# ---- groups with history --------------------------------------------------------------------------
class GroupBuilder:
    """One observation group from its metadata layout {"history_length", "enable_corruption",
    "terms": [{name, dim, noise, scale}]}: the frame is the terms concatenated; with `noise_scale`
    s > 0 each term gets uniform noise of half-width s x its training noise (0 where training adds
    none), before its scale (the env's order)."""

    def __init__(
        self, name: str, layout: Mapping, *, noise_scale: float = 0.0, rng: np.random.Generator | None = None
    ):
        self.name, self.history_length = name, int(layout["history_length"])
        self.terms = [(t["name"], term(t["name"]), int(t["dim"])) for t in layout["terms"]]
        on = bool(layout.get("enable_corruption", False))  # training adds a group's noise only when on
        self.noise = np.concatenate(
            [np.full(int(t["dim"]), float(t.get("noise", 0.0)) * on) for t in layout["terms"]]
        )
        self.scale = np.concatenate(
            [np.full(int(t["dim"]), float(t.get("scale", 1.0))) for t in layout["terms"]]
        )
        self.noise_scale, self.rng = float(noise_scale), rng or np.random.default_rng(0)
        self.width = int(sum(d for *_, d in self.terms))
        self._hist: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return self.history_length * self.width

    def frame(self, x: Inputs) -> np.ndarray:
        parts = []
        for name, fn, dim in self.terms:
            p = np.asarray(fn(x), dtype=np.float64).ravel()
            if p.shape[0] != dim:
                raise ValueError(
                    f"observation group {self.name!r}: term {name!r} gave {p.shape[0]} numbers, "
                    f"the metadata says {dim}"
                )
            parts.append(p)
        v = np.concatenate(parts)
        if self.noise_scale > 0:
            v = v + (2.0 * self.rng.random(v.shape) - 1.0) * self.noise * self.noise_scale
        return v * self.scale

    def reset(self, x: Inputs) -> np.ndarray:
        f = self.frame(x)
        self._hist = np.repeat(f[None], self.history_length, axis=0)
        return self._hist.ravel().copy()

    def step(self, x: Inputs) -> np.ndarray:
        if self._hist is None:
            return self.reset(x)
        self._hist = np.concatenate((self._hist[1:], self.frame(x)[None]), axis=0)
        return self._hist.ravel().copy()


class ObservationBuilder:
    """The groups an ONNX model reads (its metadata's `observations`), in float32 for the runtime."""

    def __init__(
        self, layouts: Mapping[str, Mapping], ctx: DeployContext, *, noise_scale: float = 0.0, seed: int = 0
    ):
        rng = np.random.default_rng(seed)
        self.ctx = ctx
        self.groups = {k: GroupBuilder(k, v, noise_scale=noise_scale, rng=rng) for k, v in layouts.items()}

    def reset(
        self, state: RobotState, ref: Reference, frame: int, action: np.ndarray
    ) -> dict[str, np.ndarray]:
        x = Inputs(state, ref, int(frame), np.asarray(action, dtype=np.float64), self.ctx)
        return {k: g.reset(x).astype(np.float32) for k, g in self.groups.items()}

    def step(
        self, state: RobotState, ref: Reference, frame: int, action: np.ndarray
    ) -> dict[str, np.ndarray]:
        x = Inputs(state, ref, int(frame), np.asarray(action, dtype=np.float64), self.ctx)
        return {k: g.step(x).astype(np.float32) for k, g in self.groups.items()}
