"""Build a MuJoCo model from a `RobotSpec` with the MjSpec API (no XML, no meshes).

Choices, and why:
- One POSITION actuator per joint, in joint order, with the table's kp/kd and forcerange = the
  effort limit. PD then runs inside `mj_step`, so a batch of worlds steps without Python per
  substep; `ctrl` is the joint target. ctrlrange is left unlimited (targets outside the joint
  range are legal, as in mjlab; the joint limit stops the motion).
- implicitfast integrator: stable with the stiff-ish PD damping at dt = 0.005.
- Collision: every collision geom touches the floor. mjlab's G1 default (FULL_COLLISION) also
  enables self-collision (condim 1, a few parent-grandchild pairs excluded); we turn it OFF by
  default (robot geoms contype=0, conaffinity=1: they collide with the floor, never with each
  other, as mjlab's FULL_COLLISION_WITHOUT_SELF) because it costs contacts every step and
  motion-tracking references are already self-collision free. `self_collision=True` restores
  mjlab's behaviour. Soles use condim 3, friction 0.6 and priority 1 (their friction wins over
  the floor's); other geoms condim 1.
- Solver: Newton with 10 iterations / 20 line-search iterations (cheap per step; the PD-held
  robot converges well within that).
"""

from __future__ import annotations

import mujoco
import numpy as np

from sonic_ray.robots.spec import RobotSpec

_GEOM_TYPE = {
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
    "box": mujoco.mjtGeom.mjGEOM_BOX,
}
# Pairs mjlab excludes when self-collision is on (overlapping capsules at rest).
_SELF_EXCLUDES = (
    ("left_elbow_link", "left_wrist_pitch_link"),
    ("right_elbow_link", "right_wrist_pitch_link"),
    ("pelvis", "left_hip_roll_link"),
    ("pelvis", "right_hip_roll_link"),
)
FLOOR_NAME = "floor"
FREE_JOINT_NAME = "floating_base_joint"


def build_spec(
    robot: RobotSpec,
    *,
    timestep: float = 0.005,
    floor: bool = True,
    self_collision: bool = False,
    iterations: int = 10,
    ls_iterations: int = 20,
) -> mujoco.MjSpec:
    """The robot (plus an optional ground plane) as an editable MjSpec."""
    spec = mujoco.MjSpec()
    spec.modelname = robot.name
    spec.option.timestep = timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.iterations = iterations
    spec.option.ls_iterations = ls_iterations
    spec.compiler.degree = False

    world = spec.worldbody
    world.add_light(name="sun", pos=[0, 0, 4], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
    if floor:
        world.add_geom(
            name=FLOOR_NAME,
            type=mujoco.mjtGeom.mjGEOM_PLANE,
            size=[0, 0, 0.05],
            rgba=[0.5, 0.55, 0.6, 1],
            contype=1,
            conaffinity=1,
            condim=3,
        )

    handles = {}
    for b in robot.bodies:
        parent = world if b.parent is None else handles[b.parent]
        pos = robot.default_root_pos if b.parent is None else b.pos
        quat = robot.default_root_quat if b.parent is None else b.quat
        body = parent.add_body(name=b.name, pos=list(pos), quat=list(quat))
        body.explicitinertial = True
        body.mass = b.mass
        body.ipos = list(b.com)
        if len(b.inertia) == 3:
            body.iquat = list(b.inertia_quat)
            body.inertia = list(b.inertia)
        else:
            body.fullinertia = list(b.inertia)
        handles[b.name] = body
        if b.parent is None:
            body.add_freejoint(name=FREE_JOINT_NAME)
        else:
            j = b.joint
            body.add_joint(
                name=j.name,
                type=mujoco.mjtJoint.mjJNT_HINGE,
                axis=list(j.axis),
                pos=list(j.pos),
                range=[j.lower, j.upper],
                limited=mujoco.mjtLimited.mjLIMITED_TRUE,
                armature=j.armature,
                damping=j.damping,
                frictionloss=j.frictionloss,
            )
        for g in b.geoms:
            body.add_geom(
                name=g.name,
                type=_GEOM_TYPE[g.type],
                size=_mj_size(g.size),
                pos=list(g.pos),
                quat=list(g.quat),
                condim=g.condim,
                friction=[g.friction, 0.005, 0.0001],
                priority=g.priority,
                contype=1 if self_collision else 0,
                conaffinity=1,
                density=0.0,
                group=3,
                rgba=[0.2, 0.6, 0.2, 0.6],
            )
    for p in robot.vr_points:
        handles[p.body].add_site(
            name=f"vr_{p.name}", pos=list(p.offset), size=[0.02, 0, 0], rgba=[1, 0, 0, 1], group=4
        )
    if self_collision:
        names = set(robot.body_names)
        for a, b in _SELF_EXCLUDES:
            if a in names and b in names:
                spec.add_exclude(bodyname1=a, bodyname2=b)

    root = handles[robot.root_body]
    root.add_camera(
        name="tracking",
        mode=mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM,
        pos=[2.0, -2.0, 0.4],
        xyaxes=[0.707, 0.707, 0, -0.1, 0.1, 0.99],
    )

    for j in robot.joints:
        act = spec.add_actuator(
            name=j.name.removesuffix("_joint"), target=j.name, trntype=mujoco.mjtTrn.mjTRN_JOINT
        )
        act.set_to_position(kp=j.kp, kv=j.kd)
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-j.effort_limit, j.effort_limit]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE

    q0 = np.concatenate([robot.default_root_pos, robot.default_root_quat, robot.default_joint_pos])
    spec.add_key(name="default", qpos=q0.tolist(), ctrl=robot.default_joint_pos.tolist())
    return spec


def build_model(robot: RobotSpec, **kwargs) -> mujoco.MjModel:
    """Compile `build_spec(robot, **kwargs)` and check its joint/body order against the table."""
    model = build_spec(robot, **kwargs).compile()
    check_model_order(model, robot, source=f"built model of {robot.name!r}")
    return model


def check_model_order(model: mujoco.MjModel, robot: RobotSpec, *, source: str) -> None:
    """The model's hinge joints and bodies (after world) must be the table's, in the table's order."""
    hinges = [
        model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE
    ]
    _first_mismatch(hinges, list(robot.joint_names), what="hinge joint", source=source)
    bodies = [model.body(i).name for i in range(1, model.nbody)]
    _first_mismatch(bodies, list(robot.body_names), what="body", source=source)


def _first_mismatch(got: list[str], want: list[str], *, what: str, source: str) -> None:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise ValueError(
                f"{source}: {what} #{i} is {g!r}, expected {w!r} (order must be the robot table's)"
            )
    if len(got) != len(want):
        raise ValueError(f"{source}: has {len(got)} {what}s, expected {len(want)}")


def _mj_size(size) -> list[float]:
    s = list(size) + [0.0] * (3 - len(size))
    return s
