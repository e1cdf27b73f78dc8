"""Building the isaaclab backend's scene: Isaac Lab's modules, the actuator config and the scene.

Split from sonic_ray/sim/isaaclab.py (the BatchedSim itself) so that file holds state, stepping,
snapshots and randomisation; everything here runs once, at construction. See isaaclab.py's docstring
for what is converted and which MuJoCo settings carry over.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import torch

from sonic_ray.sim.isaaclab_usd import INSTALL_HINT


def import_isaaclab():
    """The Isaac Lab modules this backend uses, or an ImportError naming what to install."""
    try:
        import isaaclab.sim as sim_utils
        import mujoco_usd_converter
        import mujoco_warp
        from isaaclab.actuators import ImplicitActuatorCfg
        from isaaclab.assets import ArticulationCfg, AssetBaseCfg
        from isaaclab.scene import InteractiveScene, InteractiveSceneCfg
        from isaaclab_newton.physics import MJWarpSolverCfg, NewtonCfg, NewtonManager
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from err
    return dict(
        sim_utils=sim_utils,
        converter=mujoco_usd_converter,
        mjw=mujoco_warp,
        ImplicitActuatorCfg=ImplicitActuatorCfg,
        ArticulationCfg=ArticulationCfg,
        AssetBaseCfg=AssetBaseCfg,
        InteractiveScene=InteractiveScene,
        InteractiveSceneCfg=InteractiveSceneCfg,
        MJWarpSolverCfg=MJWarpSolverCfg,
        NewtonCfg=NewtonCfg,
        NewtonManager=NewtonManager,
    )


def actuator_cfg(il, m: mujoco.MjModel):
    """One ImplicitActuatorCfg with every joint's PD gains, effort limit and armature from `m`."""
    names = [m.joint(i).name for i in range(1, m.njnt)]
    act_joint = {int(m.actuator_trnid[a, 0]): a for a in range(m.nu)}
    kp, kd, effort, armature = {}, {}, {}, {}
    for i, name in enumerate(names, start=1):
        a = act_joint[i]
        kp[name] = float(m.actuator_gainprm[a, 0])
        kd[name] = float(-m.actuator_biasprm[a, 2])
        effort[name] = float(m.actuator_forcerange[a, 1]) if m.actuator_forcelimited[a] else 1.0e9
        armature[name] = float(m.dof_armature[m.jnt_dofadr[i]])
    return il["ImplicitActuatorCfg"](
        joint_names_expr=[".*"], stiffness=kp, damping=kd, effort_limit_sim=effort, armature=armature
    )


def build_scene(
    il,
    m: mujoco.MjModel,
    *,
    root_body: int,
    num_envs: int,
    device: torch.device,
    usd: Path,
    ground: Path,
    nconmax: int,
    njmax: int,
):
    """(SimulationContext, InteractiveScene, Articulation): the floor and num_envs robots at one
    origin, Newton with the MuJoCo Warp solver set up from `m`'s options. A SimulationContext
    already in this process is cleared first (Isaac Lab keeps one per process)."""
    from isaaclab.sim import SimulationCfg, SimulationContext

    if SimulationContext.instance() is not None:  # one Isaac Lab simulation per process
        SimulationContext.clear_instance()
    integrator = {
        int(mujoco.mjtIntegrator.mjINT_EULER): "euler",
        int(mujoco.mjtIntegrator.mjINT_RK4): "rk4",
        int(mujoco.mjtIntegrator.mjINT_IMPLICITFAST): "implicitfast",
    }.get(int(m.opt.integrator))
    if integrator is None:
        raise ValueError(
            f"isaaclab backend: MuJoCo integrator {int(m.opt.integrator)} has no MuJoCo Warp twin"
        )
    solver = il["MJWarpSolverCfg"](
        njmax=njmax,
        nconmax=nconmax,
        iterations=int(m.opt.iterations),
        ls_iterations=int(m.opt.ls_iterations),
        integrator=integrator,
        cone="pyramidal",
    )
    cuda = device.type == "cuda"
    sim = SimulationContext(
        SimulationCfg(
            dt=float(m.opt.timestep),
            device=str(device),
            gravity=tuple(float(g) for g in m.opt.gravity),
            physics=il["NewtonCfg"](solver_cfg=solver, use_cuda_graph=cuda),
        )
    )
    sim_utils, art = il["sim_utils"], il["ArticulationCfg"]
    root = root_body
    cfg = il["InteractiveSceneCfg"](num_envs=num_envs, env_spacing=0.0)
    cfg.ground = il["AssetBaseCfg"](
        prim_path="/World/ground", spawn=sim_utils.UsdFileCfg(usd_path=str(ground))
    )
    # Self-collision as in the MuJoCo model (off by default there: robot geoms have contype 0, they
    # touch the floor only); Newton does not read contype/conaffinity from the converted USD.
    self_collide = bool(np.any(m.geom_contype[m.geom_bodyid > 0] != 0))
    spawn = sim_utils.UsdFileCfg(
        usd_path=str(usd),
        articulation_props=sim_utils.ArticulationRootPropertiesCfg(enabled_self_collisions=self_collide),
    )
    cfg.robot = art(
        prim_path="{ENV_REGEX_NS}/Robot",
        spawn=spawn,
        init_state=art.InitialStateCfg(
            pos=tuple(float(x) for x in m.body_pos[root]), rot=_xyzw(m.body_quat[root])
        ),
        actuators={"joints": actuator_cfg(il, m)},
    )
    scene = il["InteractiveScene"](cfg)
    sim.reset()
    robot = scene["robot"]
    want_j = [m.joint(i).name for i in range(1, m.njnt)]
    want_b = [m.body(i).name for i in range(1, m.nbody)]
    if list(robot.joint_names) != want_j or list(robot.body_names) != want_b:
        raise RuntimeError(
            "isaaclab backend: the converted articulation's joint/body order differs from the "
            f"MuJoCo model's: {robot.joint_names} / {robot.body_names}"
        )
    return sim, scene, robot


def _xyzw(wxyz) -> tuple[float, float, float, float]:
    w, x, y, z = (float(v) for v in wxyz)
    return (x, y, z, w)
