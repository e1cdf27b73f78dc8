"""The physics under the sim-to-sim loop: one robot that is reset, driven with joint targets and read.

Why an adapter: the loop in `sim2sim` (observations, ONNX, failures, metrics) must be the same
whatever simulates the robot, so that a policy trained on one simulator can be measured on another
with nothing else changing. Two implementations:

- `MujocoPhysics`: one plain `mujoco.MjData` (the default; imports nothing from training code).
- `BatchedPhysics`: one world of a `sonic_ray.sim` BatchedSim of a chosen backend (`mujoco`,
  `mujoco_warp`, `isaaclab`), the simulators training runs on. Its state is float32 (the BatchedSim
  convention), so on `mujoco` it agrees with `MujocoPhysics` to float32 rounding, not bit for bit.

Both are built from the ONNX metadata alone (`build_model`: the robot's model at the metadata's
physics step, with its PD gains and effort limits); `decimation` comes from the metadata too.
"""

from __future__ import annotations

from collections.abc import Mapping

import mujoco
import numpy as np

from sonic_ray.deploy.observations import (
    RobotState,
    mujoco_body_ids,
    quat_apply_inverse,
    robot_state_from_mujoco,
)
from sonic_ray.deploy.onnx_meta import MetadataError
from sonic_ray.robots import load_model

PLAIN = "plain"  # the default backend name: one MjData, no BatchedSim


def build_model(meta: Mapping) -> mujoco.MjModel:
    """The robot's MuJoCo model at the metadata's physics step, PD gains and effort limits from the
    metadata (position actuators: kp on the error, kd on the joint velocity)."""
    model, _ = load_model(meta["robot"], timestep=float(meta["physics_dt"]))
    hinges = [model.joint(int(model.actuator_trnid[a, 0])).name for a in range(model.nu)]
    if hinges != list(meta["joint_names"]):
        raise MetadataError(
            f"robot {meta['robot']!r}: actuated joints {hinges} differ from the metadata's joint_names"
        )
    kp, kd = np.asarray(meta["kp"], dtype=np.float64), np.asarray(meta["kd"], dtype=np.float64)
    model.actuator_gainprm[:, 0] = kp
    model.actuator_biasprm[:, 1], model.actuator_biasprm[:, 2] = -kp, -kd
    if "effort_limit" in meta:
        lim = np.asarray(meta["effort_limit"], dtype=np.float64)
        model.actuator_forcerange[:] = np.stack((-lim, lim), axis=1)
    model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_AUTORESET)  # a blow-up shows as NaN: a failure
    return model


class MujocoPhysics:
    """One plain MjData. `reset`/`step`/`state`/`finite`/`qpos` are the adapter's surface."""

    backend = PLAIN

    def __init__(self, meta: Mapping):
        self.model = build_model(meta)
        self.data = mujoco.MjData(self.model)
        self.decimation = int(meta["decimation"])
        self.body_ids = mujoco_body_ids(self.model, meta["body_names"])

    def reset(self, root_pos, root_quat, root_lin_vel_w, root_ang_vel_w, joint_pos, joint_vel) -> RobotState:
        """Full state (world-frame velocities), joint targets = joint_pos; returns the state."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[:3], d.qpos[3:7], d.qpos[7:] = root_pos, root_quat, joint_pos
        d.qvel[:3], d.qvel[3:6] = root_lin_vel_w, quat_apply_inverse(np.asarray(root_quat), root_ang_vel_w)
        d.qvel[6:] = joint_vel
        d.ctrl[:] = d.qpos[7:]
        return self.state()

    def step(self, targets: np.ndarray) -> None:
        """Hold joint targets (J,) for `decimation` physics substeps."""
        self.data.ctrl[:] = targets
        mujoco.mj_step(self.model, self.data, self.decimation)

    def finite(self) -> bool:
        return bool(np.isfinite(self.data.qpos).all() and np.isfinite(self.data.qvel).all())

    def state(self) -> RobotState:
        return robot_state_from_mujoco(self.model, self.data, self.body_ids)

    def qpos(self) -> np.ndarray:
        """(nq,) root position, root quaternion (wxyz), joint positions: what a video replays."""
        return self.data.qpos.copy()

    def close(self) -> None:
        pass


class BatchedPhysics:
    """World 0 of a one-world BatchedSim of `backend` (see sonic_ray/sim/registry.py), built with the
    metadata's model (gains, effort limits, physics_dt) and decimation. A world that the BatchedSim
    flags as blown up (NaN/inf, or a speed above its limit) is not `finite`."""

    def __init__(self, meta: Mapping, backend: str, *, device: str = "cpu"):
        import torch

        from sonic_ray.sim import make_sim

        self.backend, self._torch = backend, torch
        self.model = build_model(meta)
        # each BatchedSim handles blow-ups itself (nonfinite_envs); MuJoCo Warp rejects the flag
        self.model.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_AUTORESET)
        self.decimation = int(meta["decimation"])
        kw: dict = dict(num_envs=1, decimation=self.decimation, device=device)
        if backend == "isaaclab":  # the USD is converted from the same MJCF; gains come from `model`
            from sonic_ray.robots import model_mjcf

            kw["mjcf"] = model_mjcf(meta["robot"], timestep=float(meta["physics_dt"]))
        self.sim = make_sim(backend, self.model, **kw)
        # BatchedSim bodies are the model's minus the world body, in model order
        self.body_idx = mujoco_body_ids(self.model, meta["body_names"]) - 1

    def reset(self, root_pos, root_quat, root_lin_vel_w, root_ang_vel_w, joint_pos, joint_vel) -> RobotState:
        rows = (root_pos, root_quat, root_lin_vel_w, root_ang_vel_w, joint_pos, joint_vel)
        self.sim.reset([0], *(np.asarray(v, dtype=np.float64)[None] for v in rows))
        return self.state()

    def step(self, targets: np.ndarray) -> None:
        t = self._torch.as_tensor(np.asarray(targets)[None], dtype=self._torch.float32)
        self.sim.step(t)

    def finite(self) -> bool:
        return not bool(self.sim.nonfinite_envs()[0])

    def _row(self, name: str) -> np.ndarray:
        return getattr(self.sim.state, name)[0].detach().to("cpu").double().numpy()

    def state(self) -> RobotState:
        quat = self._row("root_quat_w")
        return RobotState(
            root_quat_w=quat,
            root_lin_vel_w=self._row("root_lin_vel_w"),
            root_ang_vel_b=quat_apply_inverse(quat, self._row("root_ang_vel_w")),
            joint_pos=self._row("joint_pos"),
            joint_vel=self._row("joint_vel"),
            body_pos_w=self._row("body_pos_w")[self.body_idx],
            body_quat_w=self._row("body_quat_w")[self.body_idx],
        )

    def qpos(self) -> np.ndarray:
        return np.concatenate((self._row("root_pos_w"), self._row("root_quat_w"), self._row("joint_pos")))

    def close(self) -> None:
        close = getattr(self.sim, "close", None)
        if close is not None:
            close()


def make_physics(meta: Mapping, backend: str = PLAIN, *, device: str = "cpu"):
    """`MujocoPhysics` for "plain", else a `BatchedPhysics` of that sim backend. An unknown name or a
    backend whose packages do not import raise ValueError / ImportError naming it."""
    if backend == PLAIN:
        return MujocoPhysics(meta)
    from sonic_ray.sim import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"unknown sim2sim backend {backend!r}; known: {[PLAIN, *BACKENDS]}")
    return BatchedPhysics(meta, backend, device=device)
