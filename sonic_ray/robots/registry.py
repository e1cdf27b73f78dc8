"""Robots by name, and loading a model either built from the table or from an external MJCF.

Adding a robot is one new table module and one line in ROBOTS.
"""

from __future__ import annotations

import os

import mujoco

from sonic_ray.robots.builder import build_model, build_spec
from sonic_ray.robots.g1 import G1
from sonic_ray.robots.spec import RobotSpec

ROBOTS: dict[str, RobotSpec] = {"g1": G1}


def get_robot(name: str) -> RobotSpec:
    try:
        return ROBOTS[name]
    except KeyError:
        raise KeyError(f"unknown robot {name!r}; known robots: {sorted(ROBOTS)}") from None


def load_model(
    name: str = "g1", *, mjcf_path: str | os.PathLike | None = None, timestep: float = 0.005
) -> tuple[mujoco.MjModel, RobotSpec]:
    """The robot's MuJoCo model and its table.

    Without mjcf_path the model is built from the table. With it, the file is loaded instead (a
    different description of the same robot, e.g. with meshes) and must have the table's hinge
    joints in the table's order and one actuator per joint, in joint order, so `ctrl` means
    the same thing either way.
    """
    robot = get_robot(name)
    if mjcf_path is None:
        return build_model(robot, timestep=timestep), robot
    path = os.fspath(mjcf_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: MJCF file not found")
    try:
        model = mujoco.MjModel.from_xml_path(path)
    except ValueError as err:
        raise ValueError(f"{path}: MuJoCo could not load it: {err}") from err
    check_external_model(model, robot, source=path)
    model.opt.timestep = timestep
    return model, robot


def model_mjcf(
    name: str = "g1", *, mjcf_path: str | os.PathLike | None = None, timestep: float = 0.005
) -> str:
    """The MJCF text of the model `load_model` returns for the same arguments (for backends that
    convert it, e.g. Isaac Lab's USD). An external file is returned as written (its timestep is the
    caller's business); its mesh paths must be absolute for a converter that reads it elsewhere."""
    if mjcf_path is None:
        return build_spec(get_robot(name), timestep=timestep).to_xml()
    with open(os.fspath(mjcf_path)) as f:
        return f.read()


def check_external_model(model: mujoco.MjModel, robot: RobotSpec, *, source: str) -> None:
    """Hinge joints equal to the table's (names and order); one joint actuator per joint, in order."""
    hinges = [
        model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE
    ]
    want = list(robot.joint_names)
    for i, (got, exp) in enumerate(zip(hinges, want)):
        if got != exp:
            raise ValueError(
                f"{source}: hinge joint #{i} is {got!r} but robot {robot.name!r} expects {exp!r} "
                "(joint names and order must equal the robot table's)"
            )
    if len(hinges) != len(want):
        extra = hinges[len(want) :] or want[len(hinges) :]
        raise ValueError(
            f"{source}: {len(hinges)} hinge joints, robot {robot.name!r} expects {len(want)} "
            f"(first unmatched: {extra[0]!r})"
        )
    actuated = []
    for a in range(model.nu):
        if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT:
            actuated.append(model.joint(int(model.actuator_trnid[a, 0])).name)
    missing = [j for j in want if j not in actuated]
    if missing:
        raise ValueError(
            f"{source}: no actuator drives joint(s) {missing}; robot {robot.name!r} needs one "
            "joint actuator per hinge joint"
        )
    if actuated != want:
        raise ValueError(
            f"{source}: actuators must drive the joints in the robot table's order; got {actuated}"
        )
