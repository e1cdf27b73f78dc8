"""The `BatchedSim` protocol every physics backend implements, and the state it exposes.

Why a protocol: the tracking env, the benchmarks and the conformance tests talk to N worlds of one
robot through this surface only, so MuJoCo on CPU threads, MuJoCo Warp and later Isaac Lab are
interchangeable. Backends take a compiled `mujoco.MjModel` whose first joint is a free joint (the
root body) followed by J one-dof joints, one actuator per joint (a position actuator: `ctrl` is the
joint target and the PD runs inside the physics step).

State conventions (shared by every backend, checked by tests/sim/test_conformance.py):
- torch float32 tensors on `device`, allocated once and refreshed in place by `reset`/`step`/`push`
  (hold on to them; never write into them).
- World frame (`_w`). Quaternions wxyz. B = model bodies excluding the world body, model order.
- Body velocities are those of the body frame origin (`xpos`), not of its centre of mass: the
  linear velocity is the velocity of the point at `body_pos_w`, the angular velocity is world frame.
- Positions and velocities are consistent with the post-step `qpos`/`qvel` (kinematics is
  recomputed after the last substep).
- `contact_forces` (N,B,3): net external force on each body in the world frame from the last
  substep of the last control step (MuJoCo's `cfrc_ext` after `mj_rnePostConstraint`: contacts plus
  any equality-constraint and `xfrc_applied` forces; this project applies neither). Zero right
  after a reset.
- `applied_torque` (N,J): generalised actuator force on each joint (`qfrc_actuator`, after the
  effort clamp) of the last substep. Zero right after a reset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

import mujoco
import numpy as np
import torch

DEFAULT_DECIMATION = 4
DEFAULT_MAX_QVEL = 1.0e3  # rad/s or m/s: anything faster is a blown-up simulation


@dataclass
class SimState:
    """Views over a backend's batched state (see the module docstring for frames and meaning)."""

    root_pos_w: torch.Tensor  # (N, 3)
    root_quat_w: torch.Tensor  # (N, 4) wxyz
    root_lin_vel_w: torch.Tensor  # (N, 3)
    root_ang_vel_w: torch.Tensor  # (N, 3)
    joint_pos: torch.Tensor  # (N, J)
    joint_vel: torch.Tensor  # (N, J)
    body_pos_w: torch.Tensor  # (N, B, 3)
    body_quat_w: torch.Tensor  # (N, B, 4) wxyz
    body_lin_vel_w: torch.Tensor  # (N, B, 3) at the body origin
    body_ang_vel_w: torch.Tensor  # (N, B, 3)
    contact_forces: torch.Tensor  # (N, B, 3) net external force, world frame
    applied_torque: torch.Tensor  # (N, J)

    def clone(self) -> SimState:
        """A detached snapshot (the live state is overwritten by the next step)."""
        return SimState(**{f.name: getattr(self, f.name).clone() for f in fields(self)})


@runtime_checkable
class BatchedSim(Protocol):
    """N worlds of one floating-base robot stepped together at the control rate.

    Attributes: num_envs N, num_joints J, num_bodies B, decimation (substeps per `step`),
    physics_dt (s), step_dt = decimation * physics_dt, device, state (`SimState`).
    Tensor arguments may be on any device; `env_ids` is a (n,) integer tensor or sequence.
    """

    num_envs: int
    num_joints: int
    num_bodies: int
    decimation: int
    physics_dt: float
    step_dt: float
    device: torch.device
    state: SimState

    def reset(self, env_ids, root_pos, root_quat, root_lin_vel, root_ang_vel, joint_pos, joint_vel) -> None:
        """Set the full state of env_ids ((n,3), (n,4) wxyz, (n,3), (n,3) world, (n,J), (n,J)).

        Also clears those envs' solver warm start, applied forces and time; other envs are untouched.
        """

    def step(self, joint_targets: torch.Tensor) -> None:
        """Hold joint_targets (N,J) for `decimation` physics substeps, then refresh `state`."""

    def set_friction(self, env_ids, static, dynamic) -> None:
        """Friction coefficient of every geom in env_ids (scalar or (n,))."""

    def set_restitution(self, env_ids, value) -> None:
        """Contact restitution in [0, 1) of every geom in env_ids (scalar or (n,))."""

    def set_body_mass_scale(self, env_ids, body_ids, scale) -> None:
        """Mass (and inertia) of body_ids (k,) in env_ids = nominal × scale (scalar, (n,) or (n,k))."""

    def set_com_offset(self, env_ids, body_id: int, offset) -> None:
        """Centre of mass of body_id in env_ids = nominal + offset ((3,) or (n,3), body frame)."""

    def push(self, env_ids, lin_vel_delta) -> None:
        """Add lin_vel_delta (n,3), world frame, to the root linear velocity of env_ids now."""

    def nonfinite_envs(self) -> torch.Tensor:
        """(N,) bool: NaN/inf state, |qvel| above the limit, or the solver gave up, since the last reset."""

    def get_state(self) -> dict:
        """A snapshot of everything the next `step` depends on (for exact resume); plain arrays."""

    def set_state(self, state: dict) -> None:
        """Restore a `get_state()` snapshot: the following steps equal those after the snapshot."""


# ---- helpers shared by backends --------------------------------------------------------------------


@dataclass(frozen=True)
class ModelLayout:
    """Where the root and the joints live in qpos/qvel, checked once per model."""

    num_joints: int
    num_bodies: int
    root_body: int  # model body index (world is 0)

    @classmethod
    def of(cls, model: mujoco.MjModel) -> ModelLayout:
        if model.njnt < 2 or model.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(
                "BatchedSim model: joint 0 must be the root's free joint, followed by one-dof joints"
            )
        one_dof = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
        bad = [model.joint(i).name for i in range(1, model.njnt) if int(model.jnt_type[i]) not in one_dof]
        if bad:
            raise ValueError(f"BatchedSim model: joints after the free joint must be hinge/slide, got {bad}")
        num_joints = model.njnt - 1
        if model.nq != 7 + num_joints or model.nv != 6 + num_joints:
            raise ValueError(
                f"BatchedSim model: nq={model.nq}, nv={model.nv}; expected 7+J and 6+J (J={num_joints})"
            )
        if model.nu != num_joints:
            raise ValueError(f"BatchedSim model: {model.nu} actuators, expected one per joint ({num_joints})")
        return cls(num_joints=num_joints, num_bodies=model.nbody - 1, root_body=int(model.jnt_bodyid[0]))


def init_common(sim, model, *, num_envs: int, decimation: int, device, max_qvel: float) -> None:
    """The attributes every backend sets the same way: layout, sizes, time steps, device, limits."""
    sim.layout = ModelLayout.of(model)
    sim.model = model
    sim.num_envs = num_envs
    sim.num_joints = sim.layout.num_joints
    sim.num_bodies = sim.layout.num_bodies
    sim.decimation = decimation
    sim.physics_dt = float(model.opt.timestep)
    sim.step_dt = decimation * sim.physics_dt
    sim.device = torch.device(device)
    sim.max_qvel = float(max_qvel)


def as_index(env_ids, num_envs: int) -> np.ndarray:
    """env_ids (tensor, sequence or slice-free iterable of ints) as a checked int64 numpy array."""
    if isinstance(env_ids, torch.Tensor):
        ids = env_ids.detach().to("cpu", torch.int64).numpy().reshape(-1)
    else:
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= num_envs):
        raise IndexError(f"env_ids must lie in [0, {num_envs}), got min {ids.min()} max {ids.max()}")
    return ids


def as_rows(value, n: int, width: int | None, name: str, *, env_column: bool = False) -> np.ndarray:
    """value broadcast to a float64 (n,) or (n,width) array.

    Accepts a scalar, (n,) or (width,)/(n,width) when width is given. env_column: a (n,) value
    means one number per env, repeated across the width (mass scale of several bodies).
    """
    if isinstance(value, torch.Tensor):
        a = value.detach().to("cpu", torch.float64).numpy()
    else:
        a = np.asarray(value, dtype=np.float64)
    shape = (n,) if width is None else (n, width)
    if env_column and width is not None and a.shape == (n,):
        a = a[:, None]
    try:
        return np.broadcast_to(a, shape).copy()
    except ValueError:
        raise ValueError(f"{name}: expected a scalar or shape {shape}, got {a.shape}") from None


def reset_rows(
    n: int, num_joints: int, device, root_pos, root_quat, root_lin_vel, root_ang_vel, joint_pos, joint_vel
) -> dict[str, torch.Tensor]:
    """`BatchedSim.reset`'s state arguments for n envs as float32 tensors on `device`, keyed by
    argument name: root_pos (n,3), root_quat (n,4), root_lin_vel (n,3), root_ang_vel (n,3),
    joint_pos (n,J), joint_vel (n,J). Each may be a scalar or broadcast to its shape (`as_rows`)."""
    return {
        k: torch.as_tensor(as_rows(v, n, w, k), dtype=torch.float32, device=device)
        for k, v, w in (
            ("root_pos", root_pos, 3),
            ("root_quat", root_quat, 4),
            ("root_lin_vel", root_lin_vel, 3),
            ("root_ang_vel", root_ang_vel, 3),
            ("joint_pos", joint_pos, num_joints),
            ("joint_vel", joint_vel, num_joints),
        )
    }


def restitution_to_dampratio(e: np.ndarray) -> np.ndarray:
    """MuJoCo has no restitution coefficient; contacts are damped springs (solref timeconst, dampratio).

    A damped spring-mass that separates after half a period bounces back with e = exp(-ζπ/√(1-ζ²)),
    so ζ = -ln e / √(π² + ln² e): e = 0 gives ζ = 1 (MuJoCo's default, critically damped), e = 0.5 gives
    ζ ≈ 0.22. Approximate: MuJoCo's soft contact also has solimp and the step discretisation.
    """
    e = np.asarray(e, dtype=np.float64)
    if np.any((e < 0) | (e >= 1)):
        raise ValueError(f"restitution must lie in [0, 1), got {e}")
    log_e = np.log(np.maximum(e, 1e-12))
    return np.where(e <= 0, 1.0, -log_e / np.sqrt(math.pi**2 + log_e**2))
