"""MuJoCo Warp: N worlds in one `mujoco_warp.Data`, on a GPU (`cuda:0`) or warp's `cpu` device.

The state tensors are `wp.to_torch` views of the warp arrays (zero copy) or, for body velocities,
tensors refreshed in place from `cvel` after each step. Warp computes in float32.

Per control step: `decimation` × `mujoco_warp.step`, then `rne_postconstraint` (fills `cfrc_ext`:
net contact force per body from the last substep, as the CPU backend), then `kinematics`,
`com_pos`, `com_vel` so poses and velocities match the post-step qpos/qvel. On CUDA this sequence
is captured once in a CUDA graph and replayed.

Randomisation: the model fields `geom_friction`, `geom_solref`, `body_mass`, `body_inertia` and
`body_ipos` are batched per world (`put_model(batch_sizes=...)`), so every hook of the protocol is
supported, per env, without copying models. Not updated after a mass change (as on CPU): the
constants `mj_setConst` derives at compile time (`body_subtreemass`, `*_invweight0`).
"""

from __future__ import annotations

import mujoco
import torch

from sonic_ray.sim.base import (
    DEFAULT_DECIMATION,
    DEFAULT_MAX_QVEL,
    SimState,
    as_index,
    as_rows,
    init_common,
    reset_rows,
    restitution_to_dampratio,
)
from sonic_ray.utils.rotations import quat_apply_inverse, quat_normalize

_BATCHED_FIELDS = ("geom_friction", "geom_solref", "body_mass", "body_inertia", "body_ipos")


def import_warp():
    """(warp, mujoco_warp), or an ImportError that says how to install them."""
    try:
        import mujoco_warp
        import warp
    except ImportError as err:
        raise ImportError(
            "the mujoco_warp backend needs `mujoco-warp` and `warp-lang`: pip install sonic-ray[warp]"
        ) from err
    return warp, mujoco_warp


class MujocoWarpSim:
    """`BatchedSim` on mujoco_warp (see sonic_ray/sim/base.py for the state conventions).

    device: "cpu" (warp's CPU device: slow, for tests) or "cuda:N". nconmax/njmax: contacts and
    constraint rows allocated per world (a fallen G1 touches the floor with many capsules).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        *,
        num_envs: int,
        decimation: int = DEFAULT_DECIMATION,
        device="cpu",
        max_qvel: float = DEFAULT_MAX_QVEL,
        nconmax: int = 96,
        njmax: int = 256,
    ):
        if num_envs < 1 or decimation < 1:
            raise ValueError(f"num_envs and decimation must be >= 1, got {num_envs}, {decimation}")
        wp, mjw = import_warp()
        self._wp, self._mjw = wp, mjw
        init_common(self, model, num_envs=num_envs, decimation=decimation, device=device, max_qvel=max_qvel)
        self._wp_device = wp.get_device(
            str(self.device) if self.device.type != "cuda" else f"cuda:{self.device.index or 0}"
        )
        data = mujoco.MjData(model)
        if model.nkey:
            mujoco.mj_resetDataKeyframe(model, data, 0)
        mujoco.mj_forward(model, data)
        with wp.ScopedDevice(self._wp_device):
            self.wm = mjw.put_model(model, batch_sizes={f: num_envs for f in _BATCHED_FIELDS})
            self.wd = mjw.put_data(model, data, nworld=num_envs, nconmax=nconmax, njmax=njmax)
        self._nominal = {
            f: torch.as_tensor(getattr(model, f).copy(), dtype=torch.float32, device=self.device)
            for f in _BATCHED_FIELDS
        }
        self._model_t = {f: wp.to_torch(getattr(self.wm, f)) for f in _BATCHED_FIELDS}
        self._bind_state()
        self._graph = None
        with wp.ScopedDevice(self._wp_device):
            self._post_step_kinematics()

    # ---- state views ---------------------------------------------------------------------------
    def _bind_state(self) -> None:
        wp, wd = self._wp, self.wd
        t = {
            k: wp.to_torch(getattr(wd, k))
            for k in (
                "qpos",
                "qvel",
                "ctrl",
                "xpos",
                "xquat",
                "cvel",
                "subtree_com",
                "cfrc_ext",
                "qfrc_actuator",
            )
        }
        self._t = t
        n, b, r = self.num_envs, self.num_bodies, self.layout.root_body - 1
        self._lin = torch.zeros(n, b, 3, device=self.device)
        self._ang = torch.zeros(n, b, 3, device=self.device)
        self.state = SimState(
            root_pos_w=t["qpos"][:, 0:3],
            root_quat_w=t["qpos"][:, 3:7],
            root_lin_vel_w=self._lin[:, r],
            root_ang_vel_w=self._ang[:, r],
            joint_pos=t["qpos"][:, 7:],
            joint_vel=t["qvel"][:, 6:],
            body_pos_w=t["xpos"][:, 1:],
            body_quat_w=t["xquat"][:, 1:],
            body_lin_vel_w=self._lin,
            body_ang_vel_w=self._ang,
            contact_forces=t["cfrc_ext"][:, 1:, 3:],
            applied_torque=t["qfrc_actuator"][:, 6:],
        )

    def _post_step_kinematics(self) -> None:
        mjw, m, d = self._mjw, self.wm, self.wd
        mjw.kinematics(m, d)
        mjw.com_pos(m, d)
        mjw.com_vel(m, d)

    def _finish_velocities(self) -> None:
        """Body-origin velocities from cvel: v_origin = v_com + ω × (x_origin − c)."""
        t = self._t
        ang = t["cvel"][:, 1:, :3]
        arm = t["xpos"][:, 1:] - t["subtree_com"][:, self.layout.root_body, None, :]
        self._lin.copy_(t["cvel"][:, 1:, 3:] + torch.linalg.cross(ang, arm, dim=-1))
        self._ang.copy_(ang)

    # ---- stepping ------------------------------------------------------------------------------
    def _physics(self) -> None:
        mjw, m, d = self._mjw, self.wm, self.wd
        for _ in range(self.decimation):
            mjw.step(m, d)
        mjw.rne_postconstraint(m, d)
        self._post_step_kinematics()

    def step(self, joint_targets: torch.Tensor) -> None:
        """Hold joint_targets (N,J) for `decimation` substeps in every world, then refresh `state`."""
        if tuple(joint_targets.shape) != (self.num_envs, self.num_joints):
            raise ValueError(
                f"joint_targets: expected shape {(self.num_envs, self.num_joints)}, "
                f"got {tuple(joint_targets.shape)}"
            )
        self._t["ctrl"].copy_(joint_targets.detach())
        wp = self._wp
        with wp.ScopedDevice(self._wp_device):
            if self._wp_device.is_cuda:
                if self._graph is None:
                    self._physics()  # compile kernels outside the capture
                    with wp.ScopedCapture() as capture:
                        self._physics()
                    self._graph = capture.graph
                else:
                    wp.capture_launch(self._graph)
            else:
                self._physics()
        self._finish_velocities()

    def reset(self, env_ids, root_pos, root_quat, root_lin_vel, root_ang_vel, joint_pos, joint_vel) -> None:
        """Set the state of env_ids (see BatchedSim.reset); clears warm start, ctrl, forces, time."""
        ids_np = as_index(env_ids, self.num_envs)
        n, dev = len(ids_np), self.device
        rows = reset_rows(
            n, self.num_joints, dev, root_pos, root_quat, root_lin_vel, root_ang_vel, joint_pos, joint_vel
        )
        wp, t = self._wp, self._t
        ids = torch.as_tensor(ids_np, device=dev)
        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=dev)
        mask[ids] = True
        with wp.ScopedDevice(self._wp_device):
            self._mjw.reset_data(self.wm, self.wd, reset=wp.from_torch(mask))
        quat = quat_normalize(rows["root_quat"])
        t["qpos"][ids] = torch.cat((rows["root_pos"], quat, rows["joint_pos"]), 1)
        # The free joint's angular velocity is in the body frame; the API's is world frame.
        local = quat_apply_inverse(quat, rows["root_ang_vel"])
        t["qvel"][ids] = torch.cat((rows["root_lin_vel"], local, rows["joint_vel"]), 1)
        t["ctrl"][ids] = rows["joint_pos"]
        t["cfrc_ext"][ids] = 0.0
        t["qfrc_actuator"][ids] = 0.0
        with wp.ScopedDevice(self._wp_device):
            self._post_step_kinematics()
        self._finish_velocities()

    def push(self, env_ids, lin_vel_delta) -> None:
        """Add lin_vel_delta (n,3), world frame, to the root linear velocity of env_ids."""
        ids_np = as_index(env_ids, self.num_envs)
        delta = torch.as_tensor(
            as_rows(lin_vel_delta, len(ids_np), 3, "lin_vel_delta"), dtype=torch.float32, device=self.device
        )
        self._t["qvel"][torch.as_tensor(ids_np, device=self.device), :3] += delta
        with self._wp.ScopedDevice(self._wp_device):
            self._mjw.com_vel(self.wm, self.wd)
        self._finish_velocities()

    # ---- snapshot (exact resume) ---------------------------------------------------------------
    _STATE_FIELDS = (
        "time",
        "qpos",
        "qvel",
        "act",
        "ctrl",
        "qacc_warmstart",
        "qfrc_applied",
        "xfrc_applied",
        "cfrc_ext",
        "qfrc_actuator",
    )

    def get_state(self) -> dict:
        """Integration state of every world (time, qpos, qvel, act, ctrl, warm start, applied forces),
        the last step's cfrc_ext / qfrc_actuator, and the per-world model fields (randomisation)."""
        wp, wd = self._wp, self.wd
        fields = {
            f: wp.to_torch(getattr(wd, f)).detach().cpu().clone()
            for f in self._STATE_FIELDS
            if getattr(wd, f, None) is not None
        }
        return {
            "backend": "mujoco_warp",
            "data": fields,
            "model": {f: t.detach().cpu().clone() for f, t in self._model_t.items()},
        }

    def set_state(self, state: dict) -> None:
        """Restore a `get_state()` snapshot taken from a sim of the same model and num_envs."""
        if state.get("backend") != "mujoco_warp":
            raise ValueError(f"sim state from backend {state.get('backend')!r}, expected 'mujoco_warp'")
        wp, wd = self._wp, self.wd
        for f, v in state["data"].items():
            dst = wp.to_torch(getattr(wd, f))
            if tuple(dst.shape) != tuple(v.shape):
                raise ValueError(
                    f"sim state {f}: shape {tuple(v.shape)}, expected {tuple(dst.shape)} "
                    "(a different robot model or num_envs?)"
                )
            dst.copy_(v.to(dst.device))
        for f, v in state["model"].items():
            self._model_t[f].copy_(v.to(self._model_t[f].device))
        with wp.ScopedDevice(self._wp_device):
            self._post_step_kinematics()
        self._finish_velocities()

    def nonfinite_envs(self) -> torch.Tensor:
        """(N,) bool: NaN/inf qpos/qvel or |qvel| > max_qvel (warp does not reset bad worlds itself)."""
        qpos, qvel = self._t["qpos"], self._t["qvel"]
        bad = ~torch.isfinite(qpos).all(1) | ~torch.isfinite(qvel).all(1)
        return bad | (qvel.abs().amax(1) > self.max_qvel)

    # ---- domain randomisation (per-world model fields) -----------------------------------------
    def _ids(self, env_ids) -> torch.Tensor:
        return torch.as_tensor(as_index(env_ids, self.num_envs), device=self.device)

    def _rows(self, value, n, width, name, **kw) -> torch.Tensor:
        return torch.as_tensor(as_rows(value, n, width, name, **kw), dtype=torch.float32, device=self.device)

    def set_friction(self, env_ids, static, dynamic=None) -> None:
        """Sliding friction of every geom in env_ids = static; `dynamic` is ignored (one Coulomb
        coefficient in MuJoCo, see MujocoCpuSim.set_friction)."""
        ids = self._ids(env_ids)
        mu = self._rows(static, len(ids), None, "static")
        if bool((mu < 0).any()):
            raise ValueError(f"static friction must be >= 0, got {mu}")
        self._model_t["geom_friction"][ids, :, 0] = mu[:, None]

    def set_restitution(self, env_ids, value) -> None:
        """Restitution of every geom in env_ids, mapped to the contact damping ratio (solref[1])."""
        ids = self._ids(env_ids)
        zeta = restitution_to_dampratio(as_rows(value, len(ids), None, "restitution"))
        self._model_t["geom_solref"][ids, :, 1] = torch.as_tensor(
            zeta, dtype=torch.float32, device=self.device
        )[:, None]

    def set_body_mass_scale(self, env_ids, body_ids, scale) -> None:
        """Mass and inertia of body_ids (k,) (0-based, world excluded) = nominal × scale."""
        ids = self._ids(env_ids)
        bodies = torch.as_tensor(as_index(body_ids, self.num_bodies) + 1, device=self.device)
        s = self._rows(scale, len(ids), len(bodies), "scale", env_column=True)
        if bool((s <= 0).any()):
            raise ValueError(f"mass scale must be > 0, got {s}")
        rows, cols = ids[:, None], bodies[None, :]
        self._model_t["body_mass"][rows, cols] = self._nominal["body_mass"][bodies] * s
        self._model_t["body_inertia"][rows, cols] = self._nominal["body_inertia"][bodies] * s[..., None]

    def set_com_offset(self, env_ids, body_id: int, offset) -> None:
        """Centre of mass of body_id (0-based, world excluded) = nominal + offset ((3,)/(n,3), body frame)."""
        ids = self._ids(env_ids)
        b = int(as_index([body_id], self.num_bodies)[0]) + 1
        off = self._rows(offset, len(ids), 3, "offset")
        self._model_t["body_ipos"][ids, b] = self._nominal["body_ipos"][b] + off

    def close(self) -> None:
        self._graph = None
