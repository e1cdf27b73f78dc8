"""Whole-body inverse kinematics (mink) that turns a designed `MotionPlan` into joint angles.

Why IK rather than animating joints directly: foot placement is what makes a reference
trackable. The plan states where the feet, pelvis, torso and hands should be; the QP finds the
joint angles, with the feet weighted far above everything else so that a planted foot stays
planted to well under a millimetre, and the joint limits as hard inequality constraints. Each
frame starts from the previous frame's solution (warm start) and takes Gauss-Newton steps
until the feet converge, so the result is smooth and deterministic.

Task weights (residual scale; the QP squares them): feet 300 / 100 (pos / rot), pelvis 10 / 5,
torso orientation 5, hands 30 (position relative to the torso), posture 0.3 (2 on the wrists,
0.02 on the legs, which the feet and pelvis determine).
"""

from __future__ import annotations

from dataclasses import dataclass

import mink
import mujoco
import numpy as np

from sonic_ray.robots.spec import RobotSpec

SOLVER = "daqp"
FOOT_Z = 0.036  # ankle-roll origin height of a flat planted foot: sole capsules 1 mm above the floor
_FOOT_TOL = 2e-5  # metres: stop iterating once both feet are this close ...
_STEP_TOL = 1e-3  # ... and the last Gauss-Newton step was this small (rad or m per coordinate)
_FEET = ("left_ankle_roll_link", "right_ankle_roll_link")
_HANDS = ("vr_left_hand", "vr_right_hand")
_ANCHOR = "torso_link"


@dataclass
class MotionPlan:
    """Everything the IK tracks, per frame (T frames; feet and hands indexed 0 left, 1 right).

    foot_pos (2, T, 3): ankle-roll origin in the world; a planted foot has z = FOOT_Z.
    foot_yaw (2, T): heading of each (flat) foot.
    pelvis_pos (T, 3), pelvis_rpy (T, 3): pelvis pose in the world (roll, pitch, yaw).
    torso_rpy (T, 3): torso orientation in the world.
    posture (T, J): joint angles the solution is pulled toward (arms, waist, null space).
    hand_pos (2, T, 3) or None: hand points (vr_*_hand sites) in the torso frame;
    hand_on (2,) which hands the hand task drives.
    """

    foot_pos: np.ndarray
    foot_yaw: np.ndarray
    pelvis_pos: np.ndarray
    pelvis_rpy: np.ndarray
    torso_rpy: np.ndarray
    posture: np.ndarray
    hand_pos: np.ndarray | None = None
    hand_on: tuple[bool, bool] = (False, False)

    @property
    def num_frames(self) -> int:
        return int(self.pelvis_pos.shape[0])

    def check(self, num_joints: int, name: str) -> None:
        t = self.num_frames
        shapes = {
            "foot_pos": (2, t, 3),
            "foot_yaw": (2, t),
            "pelvis_pos": (t, 3),
            "pelvis_rpy": (t, 3),
            "torso_rpy": (t, 3),
            "posture": (t, num_joints),
        }
        if self.hand_pos is not None:
            shapes["hand_pos"] = (2, t, 3)
        for key, shape in shapes.items():
            arr = getattr(self, key)
            if arr.shape != shape:
                raise ValueError(f"motion plan {name!r}: {key} has shape {arr.shape}, expected {shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"motion plan {name!r}: {key} has non-finite values")


def _se3(pos, rpy) -> mink.SE3:
    rot = mink.SO3.from_rpy_radians(float(rpy[0]), float(rpy[1]), float(rpy[2]))
    return mink.SE3.from_rotation_and_translation(rot, np.asarray(pos, dtype=np.float64))


class PlanSolver:
    """mink tasks on one model, reused for every frame of every clip."""

    def __init__(self, model: mujoco.MjModel, robot: RobotSpec, *, max_iters: int = 6, damping: float = 1e-4):
        if model.nq != 7 + robot.num_joints:
            raise ValueError(
                f"PlanSolver: model has nq={model.nq}, expected a free joint + {robot.num_joints} "
                f"hinges of robot {robot.name!r}"
            )
        self.model, self.robot = model, robot
        self.max_iters, self.damping = max_iters, damping
        self.config = mink.Configuration(model)
        self.feet = [mink.FrameTask(b, "body", position_cost=300.0, orientation_cost=100.0) for b in _FEET]
        self.pelvis = mink.FrameTask(robot.root_body, "body", position_cost=10.0, orientation_cost=5.0)
        self.torso = mink.FrameTask(_ANCHOR, "body", position_cost=0.0, orientation_cost=5.0)
        self.hands = [
            mink.RelativeFrameTask(s, "site", _ANCHOR, "body", position_cost=30.0, orientation_cost=0.0)
            for s in _HANDS
        ]
        posture_cost = np.full(model.nv, 0.3)
        wrists = [robot.joint_index(n) for n in robot.joint_names if "wrist" in n]
        legs = [
            robot.joint_index(n) for n in robot.joint_names if any(k in n for k in ("hip", "knee", "ankle"))
        ]
        posture_cost[6 + np.asarray(wrists, dtype=np.int64)] = 2.0  # hands move with the arm, not the wrist
        posture_cost[6 + np.asarray(legs, dtype=np.int64)] = 0.02  # feet + pelvis already fix the legs
        self.posture = mink.PostureTask(model, cost=posture_cost)
        self.limits = [mink.ConfigurationLimit(model, gain=0.95)]
        self._foot_ids = [model.body(b).id for b in _FEET]

    def initial_q(self, plan: MotionPlan) -> np.ndarray:
        quat = _se3(plan.pelvis_pos[0], plan.pelvis_rpy[0]).rotation().wxyz
        return np.concatenate([plan.pelvis_pos[0], quat, plan.posture[0]])

    def solve(self, plan: MotionPlan, *, name: str = "plan") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """root_pos (T, 3), root_quat (T, 4) wxyz, joint_pos (T, J), all float64."""
        plan.check(self.robot.num_joints, name)
        t_count = plan.num_frames
        out = np.zeros((t_count, self.model.nq))
        self.config.update(self.initial_q(plan))
        q_target = np.zeros(self.model.nq)
        for i in range(t_count):
            feet_targets = [_se3(plan.foot_pos[f, i], (0.0, 0.0, plan.foot_yaw[f, i])) for f in (0, 1)]
            for f in (0, 1):
                self.feet[f].set_target(feet_targets[f])
            self.pelvis.set_target(_se3(plan.pelvis_pos[i], plan.pelvis_rpy[i]))
            self.torso.set_target(_se3(np.zeros(3), plan.torso_rpy[i]))
            q_target[7:] = plan.posture[i]
            self.posture.set_target(q_target)
            tasks = [*self.feet, self.pelvis, self.torso, self.posture]
            for h in (0, 1):
                if plan.hand_on[h]:
                    self.hands[h].set_target(mink.SE3.from_translation(plan.hand_pos[h, i]))
                    tasks.append(self.hands[h])
            iters = self.max_iters * (5 if i == 0 else 1)
            for _ in range(iters):
                v = mink.solve_ik(self.config, tasks, 1.0, SOLVER, damping=self.damping, limits=self.limits)
                self.config.integrate_inplace(v, 1.0)
                if np.abs(v).max() < _STEP_TOL and self._feet_error(feet_targets) < _FOOT_TOL:
                    break
            out[i] = self.config.q
        quat = out[:, 3:7] / np.linalg.norm(out[:, 3:7], axis=1, keepdims=True)
        return out[:, :3], quat, out[:, 7:]

    def _feet_error(self, targets) -> float:
        x = self.config.data.xpos
        return max(float(np.linalg.norm(x[b] - tgt.translation())) for b, tgt in zip(self._foot_ids, targets))
