"""A robot described as plain, frozen data: bodies, joints, actuators, collision and named points.

Why data rather than an MJCF file: the training code needs the same facts in many places (joint
order, PD gains, action scale, default pose, which bodies are feet or end effectors), and a table
in Python is the single source for all of them. `builder.py` turns a `RobotSpec` into a MuJoCo
model; another robot is another table.

Conventions: positions in metres in the parent body's frame, quaternions wxyz, angles in radians.
Per-joint arrays are numpy (J,) in `joint_names` order, read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

IDENTITY_QUAT = (1.0, 0.0, 0.0, 0.0)
GEOM_TYPES = ("sphere", "capsule", "box")


@dataclass(frozen=True)
class JointSpec:
    """One actuated hinge joint (the joint that moves its body relative to the parent).

    `kp`/`kd` are the PD gains of the position actuator on this joint; `effort_limit` clamps
    its force. `armature` is the motor's reflected rotor inertia.
    """

    name: str
    axis: tuple[float, float, float]
    lower: float
    upper: float
    effort_limit: float
    velocity_limit: float
    armature: float
    kp: float
    kd: float
    default_pos: float = 0.0
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    damping: float = 0.0
    frictionloss: float = 0.0


@dataclass(frozen=True)
class GeomSpec:
    """A collision primitive attached to a body.

    size follows MuJoCo: sphere (radius,), capsule (radius, half_length) along local z,
    box (half_x, half_y, half_z).
    """

    name: str
    type: str
    size: tuple[float, ...]
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = IDENTITY_QUAT
    condim: int = 1
    friction: float = 1.0
    priority: int = 0

    def __post_init__(self):
        expected = {"sphere": 1, "capsule": 2, "box": 3}
        if self.type not in expected:
            raise ValueError(f"geom {self.name!r}: type {self.type!r} is not one of {GEOM_TYPES}")
        if len(self.size) != expected[self.type]:
            raise ValueError(
                f"geom {self.name!r}: a {self.type} needs {expected[self.type]} size values, got {self.size}"
            )


def capsule_from_to(name: str, start, end, radius: float, **kwargs) -> GeomSpec:
    """A capsule between two points of the body frame (MJCF's `fromto`), as pos/quat/half-length."""
    a = np.asarray(start, dtype=np.float64)
    b = np.asarray(end, dtype=np.float64)
    d = b - a
    length = float(np.linalg.norm(d))
    if length < 1e-9:
        raise ValueError(f"capsule {name!r}: start and end coincide")
    z = d / length
    # Shortest rotation taking the local z axis onto z (half-way vector construction).
    w = 1.0 + z[2]
    if w < 1e-9:  # pointing straight down: rotate pi about x
        quat = (0.0, 1.0, 0.0, 0.0)
    else:
        q = np.array([w, -z[1], z[0], 0.0])
        quat = tuple(float(v) for v in q / np.linalg.norm(q))
    pos = tuple(float(v) for v in 0.5 * (a + b))
    return GeomSpec(name=name, type="capsule", size=(radius, 0.5 * length), pos=pos, quat=quat, **kwargs)


@dataclass(frozen=True)
class BodySpec:
    """A rigid link. `joint` is None for the root (free-floating) body and for welded bodies.

    Inertia: `inertia` is either the 3 principal moments (in the frame given by `inertia_quat`,
    centred at `com`) or the full tensor as (ixx, iyy, izz, ixy, ixz, iyz).
    """

    name: str
    parent: str | None
    pos: tuple[float, float, float]
    mass: float
    com: tuple[float, float, float]
    inertia: tuple[float, ...]
    quat: tuple[float, float, float, float] = IDENTITY_QUAT
    inertia_quat: tuple[float, float, float, float] = IDENTITY_QUAT
    joint: JointSpec | None = None
    geoms: tuple[GeomSpec, ...] = ()

    def __post_init__(self):
        if len(self.inertia) not in (3, 6):
            raise ValueError(f"body {self.name!r}: inertia needs 3 (diagonal) or 6 (full) values")
        if self.mass <= 0:
            raise ValueError(f"body {self.name!r}: mass must be positive, got {self.mass}")


@dataclass(frozen=True)
class PointSpec:
    """A named point fixed to a body: `offset` in the body frame (metres)."""

    name: str
    body: str
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class RobotSpec:
    """A floating-base robot: bodies in model order (depth-first, root first), plus task metadata.

    anchor_body: the body whose pose the tracker follows (SONIC: pelvis; BeyondMimic: torso_link).
    end_effector_bodies: bodies checked by the end-effector termination.
    tracked_bodies: the bodies the body-tracking rewards average over (SONIC's command
      `body_names`: the kernels' sigmas were tuned on this subset); empty means every body.
    contact_ok_bodies: bodies besides the feet that may touch things unpenalised.
    vr_points: the teleop 3-point targets (head, left hand, right hand).
    reward_points: the points of the local point-tracking reward (SONIC's `reward_point_body`).
    smpl_keypoints: the 24 SMPL joints as points on the robot (an approximate correspondence).
    """

    name: str
    bodies: tuple[BodySpec, ...]
    root_body: str
    anchor_body: str
    feet_bodies: tuple[str, ...]
    end_effector_bodies: tuple[str, ...]
    tracked_bodies: tuple[str, ...] = ()
    contact_ok_bodies: tuple[str, ...] = ()
    vr_points: tuple[PointSpec, ...] = ()
    reward_points: tuple[PointSpec, ...] = ()
    smpl_keypoints: tuple[PointSpec, ...] = ()
    default_root_pos: tuple[float, float, float] = (0.0, 0.0, 1.0)
    default_root_quat: tuple[float, float, float, float] = IDENTITY_QUAT
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        names = [b.name for b in self.bodies]
        if len(set(names)) != len(names):
            raise ValueError(f"robot {self.name!r}: duplicate body names")
        if not self.bodies or self.bodies[0].name != self.root_body or self.bodies[0].parent is not None:
            raise ValueError(
                f"robot {self.name!r}: the first body must be the root {self.root_body!r} with parent None"
            )
        seen: set[str] = set()
        for b in self.bodies:
            if b.parent is not None and b.parent not in seen:
                raise ValueError(
                    f"robot {self.name!r}: body {b.name!r} lists parent {b.parent!r} "
                    "before it is defined (bodies must be in depth-first order)"
                )
            if b.parent is not None and b.joint is None:
                raise ValueError(f"robot {self.name!r}: non-root body {b.name!r} has no joint")
            seen.add(b.name)
        _check_depth_first(self.name, self.bodies)
        jn = [j.name for j in self.joints]
        if len(set(jn)) != len(jn):
            raise ValueError(f"robot {self.name!r}: duplicate joint names")
        for j in self.joints:
            if not j.lower < j.upper:
                raise ValueError(f"joint {j.name!r}: lower {j.lower} must be below upper {j.upper}")
            if not j.lower <= j.default_pos <= j.upper:
                raise ValueError(
                    f"joint {j.name!r}: default_pos {j.default_pos} outside [{j.lower}, {j.upper}]"
                )
            if j.kp <= 0 or j.effort_limit <= 0:
                raise ValueError(f"joint {j.name!r}: kp and effort_limit must be positive")
        body_set = set(names)
        refs = [("root_body", self.root_body), ("anchor_body", self.anchor_body)]
        refs += [("feet_bodies", b) for b in self.feet_bodies]
        refs += [("end_effector_bodies", b) for b in self.end_effector_bodies]
        refs += [("tracked_bodies", b) for b in self.tracked_bodies]
        refs += [("contact_ok_bodies", b) for b in self.contact_ok_bodies]
        refs += [("vr_points", p.body) for p in self.vr_points]
        refs += [("reward_points", p.body) for p in self.reward_points]
        refs += [("smpl_keypoints", p.body) for p in self.smpl_keypoints]
        for fld, b in refs:
            if b not in body_set:
                raise ValueError(f"robot {self.name!r}: {fld} names unknown body {b!r}")

    # ---- names and indices -------------------------------------------------------------------
    @cached_property
    def joints(self) -> tuple[JointSpec, ...]:
        return tuple(b.joint for b in self.bodies if b.joint is not None)

    @cached_property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @cached_property
    def body_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bodies)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def num_bodies(self) -> int:
        return len(self.bodies)

    def body(self, name: str) -> BodySpec:
        return self.bodies[self.body_index(name)]

    def body_index(self, name: str) -> int:
        try:
            return self.body_names.index(name)
        except ValueError:
            raise KeyError(
                f"robot {self.name!r} has no body {name!r}; bodies: {list(self.body_names)}"
            ) from None

    def joint_index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(
                f"robot {self.name!r} has no joint {name!r}; joints: {list(self.joint_names)}"
            ) from None

    def body_indices(self, names) -> np.ndarray:
        return np.array([self.body_index(n) for n in names], dtype=np.int64)

    @cached_property
    def undesired_contact_bodies(self) -> tuple[str, ...]:
        """Every body but the feet and contact_ok_bodies: touching anything with these is penalised."""
        ok = set(self.feet_bodies) | set(self.contact_ok_bodies)
        return tuple(n for n in self.body_names if n not in ok)

    @cached_property
    def tracked_body_names(self) -> tuple[str, ...]:
        """tracked_bodies in model order (every body when empty)."""
        keep = set(self.tracked_bodies) if self.tracked_bodies else set(self.body_names)
        return tuple(n for n in self.body_names if n in keep)

    @property
    def feet_body_ids(self) -> np.ndarray:
        return self.body_indices(self.feet_bodies)

    @property
    def root_body_id(self) -> int:
        return self.body_index(self.root_body)

    def point_table(self, points) -> tuple[np.ndarray, np.ndarray]:
        """(P,) body indices and (P, 3) offsets for a sequence of PointSpec."""
        ids = self.body_indices([p.body for p in points])
        offsets = np.array([p.offset for p in points], dtype=np.float64).reshape(-1, 3)
        return ids, offsets

    # ---- per-joint arrays (J,) ---------------------------------------------------------------
    def _joint_array(self, attr: str) -> np.ndarray:
        a = np.array([getattr(j, attr) for j in self.joints], dtype=np.float64)
        a.setflags(write=False)
        return a

    @cached_property
    def joint_lower(self) -> np.ndarray:
        return self._joint_array("lower")

    @cached_property
    def joint_upper(self) -> np.ndarray:
        return self._joint_array("upper")

    @cached_property
    def effort_limit(self) -> np.ndarray:
        return self._joint_array("effort_limit")

    @cached_property
    def velocity_limit(self) -> np.ndarray:
        return self._joint_array("velocity_limit")

    @cached_property
    def armature(self) -> np.ndarray:
        return self._joint_array("armature")

    @cached_property
    def kp(self) -> np.ndarray:
        return self._joint_array("kp")

    @cached_property
    def kd(self) -> np.ndarray:
        return self._joint_array("kd")

    @cached_property
    def default_joint_pos(self) -> np.ndarray:
        return self._joint_array("default_pos")

    @cached_property
    def action_scale(self) -> np.ndarray:
        """BeyondMimic's scale: an action of 1 asks for a quarter of the effort limit."""
        a = 0.25 * self.effort_limit / self.kp
        a.setflags(write=False)
        return a


def _check_depth_first(robot: str, bodies) -> None:
    """MuJoCo numbers bodies depth-first; the spec must already be in that order."""
    children: dict[str | None, list[str]] = {}
    for b in bodies:
        children.setdefault(b.parent, []).append(b.name)
    order: list[str] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(reversed(children.get(n, [])))
    if order != [b.name for b in bodies]:
        first = next(i for i, (a, b) in enumerate(zip(order, bodies)) if a != b.name)
        raise ValueError(
            f"robot {robot!r}: bodies are not in depth-first order at position {first} "
            f"(expected {order[first]!r}, got {bodies[first].name!r})"
        )
