"""Isaac Lab 3.0 (Newton physics, MuJoCo Warp solver, no Omniverse Kit): `sim.backend=isaaclab`.

Needs Python 3.12 and `make isaaclab-setup` (.venv-isaaclab); nothing else in the project imports
Isaac Lab. The robot is the project's own model: its MJCF (`robots.model_mjcf`) is stripped of the
floor, lights, cameras, sites, keyframes and actuators, converted to USD with mujoco-usd-converter
and cached under `cache_dir/<sha256 of the stripped MJCF>/` (nothing is downloaded). The floor is a
local plane converted the same way (Isaac Lab's default ground plane lives on NVIDIA's server).

The articulation gets the MuJoCo model's PD gains (actuator kp/kd), effort limits (forcerange) and
armature through one `ImplicitActuatorCfg`: Newton turns them into MuJoCo Warp actuators whose
summed force the joint's `actfrcrange` clamps, the same PD as the MuJoCo backends. Solver options
(iterations, line search, integrator, pyramidal cone) come from the model. Envs are Newton worlds at
one origin (env_spacing 0: world coordinates equal the MuJoCo backends'), sharing the floor.

Isaac Lab 3 quaternions are xyzw; the state here is wxyz like every backend. Body states are the
link-frame (body origin) ones. `contact_forces` is MuJoCo Warp's `cfrc_ext` (after
`rne_postconstraint` on the last substep) and `applied_torque` its `qfrc_actuator`, read from the
solver's data, as on the Warp backend.

Randomisation writes Newton's model (per-shape friction, MuJoCo solref for restitution, body
mass/inertia/COM through the articulation) and Newton pushes it into MuJoCo Warp at the next step.

Legitimate differences from the MuJoCo backends (the conformance tests state the tolerances): geom
priority does not survive the USD conversion (the floor is nearly frictionless instead, see
isaaclab_usd.GROUND_MJCF), MuJoCo Warp computes in float32, and Newton rebuilds the MuJoCo model
from USD (inertia frames, geom order): measured, 1 s of a contact-rich rollout stays within ~1e-5 m.
Isaac Lab keeps one SimulationContext per process: building a second IsaacLabSim closes the first
(one sim per process, as the env runners and evaluation tasks have).
"""

from __future__ import annotations

import os

import mujoco
import numpy as np
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
from sonic_ray.sim.isaaclab_scene import build_scene, import_isaaclab
from sonic_ray.sim.isaaclab_usd import GROUND_MJCF, cached_usd, robot_only_mjcf

__all__ = ["IsaacLabSim", "import_isaaclab"]


class IsaacLabSim:
    """`BatchedSim` on Isaac Lab 3 / Newton (see sonic_ray/sim/base.py for the state conventions).

    mjcf: the model's MJCF text (`robots.model_mjcf`; `model` must be compiled from it). device: "cpu"
    or "cuda:N" (CUDA graphs on CUDA). nconmax/njmax: contacts and constraint rows per world.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        *,
        mjcf: str,
        num_envs: int,
        decimation: int = DEFAULT_DECIMATION,
        device="cpu",
        max_qvel: float = DEFAULT_MAX_QVEL,
        nconmax: int = 96,
        njmax: int = 256,
        cache_dir: str | os.PathLike | None = None,
    ):
        if num_envs < 1 or decimation < 1:
            raise ValueError(f"num_envs and decimation must be >= 1, got {num_envs}, {decimation}")
        il = import_isaaclab()
        self._il = il
        init_common(self, model, num_envs=num_envs, decimation=decimation, device=device, max_qvel=max_qvel)
        usd = cached_usd(robot_only_mjcf(mjcf), cache_dir, converter=il["converter"])
        ground = cached_usd(GROUND_MJCF, cache_dir, converter=il["converter"])
        self.sim, self.scene, self.robot = build_scene(
            il,
            model,
            root_body=self.layout.root_body,
            num_envs=num_envs,
            device=self.device,
            usd=usd,
            ground=ground,
            nconmax=nconmax,
            njmax=njmax,
        )
        self._bind_solver()
        n, j, b = self.num_envs, self.num_joints, self.num_bodies
        z = dict(device=self.device, dtype=torch.float32)
        self.state = SimState(
            root_pos_w=torch.zeros(n, 3, **z),
            root_quat_w=torch.zeros(n, 4, **z),
            root_lin_vel_w=torch.zeros(n, 3, **z),
            root_ang_vel_w=torch.zeros(n, 3, **z),
            joint_pos=torch.zeros(n, j, **z),
            joint_vel=torch.zeros(n, j, **z),
            body_pos_w=torch.zeros(n, b, 3, **z),
            body_quat_w=torch.zeros(n, b, 4, **z),
            body_lin_vel_w=torch.zeros(n, b, 3, **z),
            body_ang_vel_w=torch.zeros(n, b, 3, **z),
            contact_forces=torch.zeros(n, b, 3, **z),
            applied_torque=torch.zeros(n, j, **z),
        )
        self._bad = torch.zeros(n, dtype=torch.bool, device=self.device)
        self._targets = torch.as_tensor(
            np.tile(self.model.qpos0[7:], (n, 1)), dtype=torch.float32, device=self.device
        )
        self._bind_shapes()
        self._refresh()

    # ---- construction (the scene: isaaclab_scene.build_scene) ----------------------------------
    def _bind_solver(self) -> None:
        """Views of the MuJoCo Warp data inside Newton's solver, in the MuJoCo model's body/dof order."""
        manager = self._il["NewtonManager"]
        solver = manager._solver
        self._manager, self._solver = manager, solver
        # MuJoCo Warp printf()s "linesearch iterations limit reached" to stdout on steps where the model's
        # line search (20 iterations, as on CPU MuJoCo, which stays silent) does not converge: hundreds of
        # lines per training iteration. The overflow is still recorded per world in mjw_data.
        solver.mjw_model.opt.warn_overflow = False
        mj = solver.mj_model
        wp_names = [mj.body(i).name for i in range(mj.nbody)]
        bodies = []
        for i in range(1, self.model.nbody):
            name = self.model.body(i).name
            hits = [k for k, w in enumerate(wp_names) if w == name or w.endswith("_" + name)]
            bodies.append(min(hits, key=lambda k: len(wp_names[k])) if hits else -1)
        jnames = [mj.joint(i).name for i in range(mj.njnt)]
        dofs = []
        for i in range(1, self.model.njnt):
            name = self.model.joint(i).name
            hits = [k for k, w in enumerate(jnames) if w == name or w.endswith("_" + name)]
            dofs.append(int(mj.jnt_dofadr[min(hits, key=lambda k: len(jnames[k]))]) if hits else -1)
        if -1 in bodies or -1 in dofs:
            raise RuntimeError(
                f"isaaclab backend: cannot map MuJoCo Warp bodies/joints {wp_names} / {jnames}"
            )
        self._wp_bodies = torch.as_tensor(bodies, device=self.device)
        self._wp_dofs = torch.as_tensor(dofs, device=self.device)
        import warp as wp

        self._wp = wp
        d = solver.mjw_data
        self._cfrc = wp.to_torch(d.cfrc_ext)
        self._qfrc = wp.to_torch(d.qfrc_actuator)
        self._warm = wp.to_torch(d.qacc_warmstart)

    # ---- state ---------------------------------------------------------------------------------
    def _refresh(self, forces: bool = False) -> None:
        d, s = self.robot.data, self.state
        pos, quat = d.body_link_pos_w.torch, d.body_link_quat_w.torch
        lin, ang = d.body_link_lin_vel_w.torch, d.body_link_ang_vel_w.torch
        r = self.layout.root_body - 1
        s.body_pos_w.copy_(pos)
        s.body_quat_w.copy_(quat.roll(1, dims=-1))
        s.body_lin_vel_w.copy_(lin)
        s.body_ang_vel_w.copy_(ang)
        s.root_pos_w.copy_(s.body_pos_w[:, r])
        s.root_quat_w.copy_(s.body_quat_w[:, r])
        s.root_lin_vel_w.copy_(lin[:, r])
        s.root_ang_vel_w.copy_(ang[:, r])
        s.joint_pos.copy_(d.joint_pos.torch)
        s.joint_vel.copy_(d.joint_vel.torch)
        if forces:
            s.contact_forces.copy_(self._cfrc[:, self._wp_bodies, 3:])
            s.applied_torque.copy_(self._qfrc[:, self._wp_dofs])
        self._bad |= self._unhealthy()

    def _unhealthy(self) -> torch.Tensor:
        s = self.state
        parts = (s.root_pos_w, s.root_quat_w, s.root_lin_vel_w, s.root_ang_vel_w, s.joint_pos, s.joint_vel)
        bad = ~torch.cat(parts, 1).isfinite().all(1)
        speed = torch.cat((s.root_lin_vel_w, s.root_ang_vel_w, s.joint_vel), 1).abs().amax(1)
        return bad | (speed > self.max_qvel)

    # ---- stepping ------------------------------------------------------------------------------
    def step(self, joint_targets: torch.Tensor) -> None:
        """Hold joint_targets (N,J) for `decimation` substeps in every env, then refresh `state`."""
        if tuple(joint_targets.shape) != (self.num_envs, self.num_joints):
            raise ValueError(
                f"joint_targets: expected shape {(self.num_envs, self.num_joints)}, "
                f"got {tuple(joint_targets.shape)}"
            )
        self._set_targets(joint_targets.detach().to(self.device, torch.float32))
        self.scene.write_data_to_sim()
        for _ in range(self.decimation):
            self.sim.step(render=False)
        with self._wp.ScopedDevice(self._solver.model.device):
            self._il["mjw"].rne_postconstraint(self._solver.mjw_model, self._solver.mjw_data)
        self.scene.update(self.step_dt)
        self._refresh(forces=True)

    def _set_targets(self, targets: torch.Tensor) -> None:
        """(N,J) joint position targets into the actuators (applied at write_data_to_sim)."""
        if targets is not self._targets:
            self._targets.copy_(targets)
        self.robot.set_joint_position_target_index(target=self._targets)

    def reset(self, env_ids, root_pos, root_quat, root_lin_vel, root_ang_vel, joint_pos, joint_vel) -> None:
        """Set the state of env_ids (see BatchedSim.reset); clears warm start, targets, forces."""
        ids_np = as_index(env_ids, self.num_envs)
        if not len(ids_np):
            return
        n, dev = len(ids_np), self.device
        rows = reset_rows(
            n, self.num_joints, dev, root_pos, root_quat, root_lin_vel, root_ang_vel, joint_pos, joint_vel
        )
        ids = torch.as_tensor(ids_np, device=dev, dtype=torch.int32)
        quat = rows["root_quat"] / rows["root_quat"].norm(dim=1, keepdim=True)
        a = self.robot
        a.write_root_link_pose_to_sim_index(
            root_pose=torch.cat((rows["root_pos"], quat.roll(-1, dims=1)), 1), env_ids=ids
        )
        a.write_root_link_velocity_to_sim_index(
            root_velocity=torch.cat((rows["root_lin_vel"], rows["root_ang_vel"]), 1), env_ids=ids
        )
        a.write_joint_state_to_sim_index(position=rows["joint_pos"], velocity=rows["joint_vel"], env_ids=ids)
        self._targets[ids.long()] = rows["joint_pos"]
        self._set_targets(self._targets)
        lids = ids.long()
        self._warm[lids] = 0.0
        self._cfrc[lids] = 0.0
        self._qfrc[lids] = 0.0
        self._bad[lids] = False
        self._manager.forward()
        self.scene.update(0.0)
        self._refresh()
        self.state.contact_forces[lids] = 0.0
        self.state.applied_torque[lids] = 0.0

    def push(self, env_ids, lin_vel_delta) -> None:
        """Add lin_vel_delta (n,3), world frame, to the root linear velocity of env_ids."""
        ids_np = as_index(env_ids, self.num_envs)
        delta = torch.as_tensor(
            as_rows(lin_vel_delta, len(ids_np), 3, "lin_vel_delta"), dtype=torch.float32, device=self.device
        )
        ids = torch.as_tensor(ids_np, device=self.device)
        vel = torch.cat((self.state.root_lin_vel_w[ids] + delta, self.state.root_ang_vel_w[ids]), 1)
        self.robot.write_root_link_velocity_to_sim_index(root_velocity=vel, env_ids=ids.to(torch.int32))
        self._manager.forward()
        self.scene.update(0.0)
        self._refresh()

    def nonfinite_envs(self) -> torch.Tensor:
        """(N,) bool: NaN/inf state or |velocity| > max_qvel since the last reset of the env."""
        return self._bad | self._unhealthy()

    # ---- snapshot (exact resume) ---------------------------------------------------------------
    _MODEL_FIELDS = (
        "shape_material_mu",
        "body_mass",
        "body_inv_mass",
        "body_inertia",
        "body_inv_inertia",
        "body_com",
    )

    def _model_arrays(self) -> dict:
        nm = self._manager.get_model()
        out = {f: self._wp.to_torch(getattr(nm, f)) for f in self._MODEL_FIELDS}
        out["mujoco.solref"] = self._solref
        return out

    def get_state(self) -> dict:
        """Newton's joint coordinates (what MuJoCo Warp steps from), MuJoCo Warp's warm start and
        time, the joint targets, the per-world model fields (randomisation) and the state views."""
        st, wp = self._manager.get_state_0(), self._wp
        cpu = lambda t: t.detach().cpu().clone()  # noqa: E731
        d = self._solver.mjw_data
        return {
            "backend": "isaaclab",
            "newton": {"joint_q": cpu(wp.to_torch(st.joint_q)), "joint_qd": cpu(wp.to_torch(st.joint_qd))},
            "mjw": {"qacc_warmstart": cpu(self._warm), "time": cpu(wp.to_torch(d.time))},
            "targets": cpu(self._targets),
            "bad": cpu(self._bad),
            "model": {k: cpu(v) for k, v in self._model_arrays().items()},
            "state": {f: cpu(getattr(self.state, f)) for f in self.state.__dataclass_fields__},
        }

    def set_state(self, state: dict) -> None:
        """Restore a `get_state()` snapshot taken from a sim of the same model and num_envs."""
        if state.get("backend") != "isaaclab":
            raise ValueError(f"sim state from backend {state.get('backend')!r}, expected 'isaaclab'")
        s = state["state"]
        if tuple(s["joint_pos"].shape) != (self.num_envs, self.num_joints):
            raise ValueError(
                f"sim state for joint_pos {tuple(s['joint_pos'].shape)}, this sim has "
                f"{(self.num_envs, self.num_joints)} (a different robot model or num_envs?)"
            )
        # Through Isaac Lab's writers first (its cached data and FK follow), then Newton's raw coordinates
        # over them (the writers' link/COM conversions round in float32) and MuJoCo Warp's warm start.
        self.reset(
            range(self.num_envs),
            s["root_pos_w"],
            s["root_quat_w"],
            s["root_lin_vel_w"],
            s["root_ang_vel_w"],
            s["joint_pos"],
            s["joint_vel"],
        )
        from newton import ModelFlags

        for k, v in self._model_arrays().items():
            v.copy_(state["model"][k].to(v.device))
        self._manager.add_model_change(ModelFlags.SHAPE_PROPERTIES)
        self._manager.add_model_change(ModelFlags.BODY_INERTIAL_PROPERTIES)
        st, wp = self._manager.get_state_0(), self._wp
        for k, v in state["newton"].items():
            wp.to_torch(getattr(st, k)).copy_(v.to(self.device))
        self._warm.copy_(state["mjw"]["qacc_warmstart"].to(self.device))
        wp.to_torch(self._solver.mjw_data.time).copy_(state["mjw"]["time"].to(self.device))
        self._set_targets(state["targets"].to(self.device))
        self._bad.copy_(state["bad"].to(self.device))
        for f, v in s.items():
            getattr(self.state, f).copy_(v.to(self.device))

    # ---- domain randomisation ------------------------------------------------------------------
    def _bind_shapes(self) -> None:
        """(N, S) indices of each env's robot shapes in Newton's model, and torch views of the
        per-shape friction and MuJoCo solref Newton copies into MuJoCo Warp's geoms."""
        nm = self._manager.get_model()
        world = nm.shape_world.numpy()
        per_env = [np.flatnonzero(world == i) for i in range(self.num_envs)]
        if len({len(p) for p in per_env}) != 1:
            raise RuntimeError("isaaclab backend: envs hold different numbers of shapes")
        self._shape_ids = torch.as_tensor(np.stack(per_env), device=self.device)
        self._mu = self._wp.to_torch(nm.shape_material_mu)
        self._solref = self._wp.to_torch(nm.mujoco.solref)

    def _shapes_changed(self) -> None:
        from newton import ModelFlags

        self._manager.add_model_change(ModelFlags.SHAPE_PROPERTIES)  # applied at the next physics step

    def set_friction(self, env_ids, static, dynamic=None) -> None:
        """Friction of every robot shape in env_ids = static (one Coulomb coefficient, `dynamic` is
        ignored, as on the MuJoCo backends). The floor's is ~0, so a contact's (the max of its two
        geoms') is the robot shape's."""
        ids = torch.as_tensor(as_index(env_ids, self.num_envs), device=self.device)
        mu = torch.as_tensor(
            as_rows(static, len(ids), None, "static"), dtype=torch.float32, device=self.device
        )
        if bool((mu < 0).any()):
            raise ValueError(f"static friction must be >= 0, got {mu}")
        self._mu[self._shape_ids[ids]] = mu[:, None]
        self._shapes_changed()

    def set_restitution(self, env_ids, value) -> None:
        """Restitution of every robot shape in env_ids, mapped to the contact damping ratio (solref[1])
        as on the MuJoCo backends (MuJoCo Warp has no restitution coefficient)."""
        ids = torch.as_tensor(as_index(env_ids, self.num_envs), device=self.device)
        zeta = restitution_to_dampratio(as_rows(value, len(ids), None, "restitution"))
        self._solref[self._shape_ids[ids], 1] = torch.as_tensor(
            zeta, dtype=torch.float32, device=self.device
        )[:, None]
        self._shapes_changed()

    def set_body_mass_scale(self, env_ids, body_ids, scale) -> None:
        """Mass and inertia of body_ids (k,) (0-based, world excluded) = nominal × scale."""
        ids = torch.as_tensor(as_index(env_ids, self.num_envs), device=self.device)
        bodies = torch.as_tensor(as_index(body_ids, self.num_bodies), device=self.device)
        s = torch.as_tensor(
            as_rows(scale, len(ids), len(bodies), "scale", env_column=True),
            dtype=torch.float32,
            device=self.device,
        )
        if bool((s <= 0).any()):
            raise ValueError(f"mass scale must be > 0, got {s}")
        mass = torch.as_tensor(self.model.body_mass[1:], dtype=torch.float32, device=self.device)[bodies] * s
        inertia = self._nominal_inertia()[bodies] * s[..., None, None]
        self.robot.set_masses_index(masses=mass, body_ids=bodies.to(torch.int32), env_ids=ids.to(torch.int32))
        self.robot.set_inertias_index(
            inertias=inertia.reshape(len(ids), len(bodies), 9),
            body_ids=bodies.to(torch.int32),
            env_ids=ids.to(torch.int32),
        )

    def _nominal_inertia(self) -> torch.Tensor:
        """(B,3,3) body-frame inertia about the COM of the nominal model (MuJoCo stores it diagonal
        in the principal frame `body_iquat`)."""
        m = self.model
        out = np.zeros((m.nbody - 1, 3, 3))
        for b in range(1, m.nbody):
            rot = np.zeros(9)
            mujoco.mju_quat2Mat(rot, m.body_iquat[b])
            r = rot.reshape(3, 3)
            out[b - 1] = r @ np.diag(m.body_inertia[b]) @ r.T
        return torch.as_tensor(out, dtype=torch.float32, device=self.device)

    def set_com_offset(self, env_ids, body_id: int, offset) -> None:
        """Centre of mass of body_id (0-based, world excluded) = nominal + offset ((3,)/(n,3), body frame)."""
        ids = torch.as_tensor(as_index(env_ids, self.num_envs), device=self.device)
        b = int(as_index([body_id], self.num_bodies)[0])
        off = torch.as_tensor(as_rows(offset, len(ids), 3, "offset"), dtype=torch.float32, device=self.device)
        com = torch.as_tensor(self.model.body_ipos[b + 1], dtype=torch.float32, device=self.device) + off
        self.robot.set_coms_index(
            coms=com[:, None, :], body_ids=torch.tensor([b], dtype=torch.int32), env_ids=ids.to(torch.int32)
        )

    def close(self) -> None:
        from isaaclab.sim import SimulationContext

        if SimulationContext.instance() is self.sim:
            SimulationContext.clear_instance()
