"""The designed motions behind the synthetic clip set, one small function per clip.

Each design maps frame times t (T,) to a `MotionPlan`: where the feet, pelvis, torso and hands
go, plus a joint-space posture for what the tasks leave free (arms, waist, elbows). Values are
chosen by hand for the G1 (joint names and signs are the G1's: negative shoulder pitch raises
the arm forward, positive left shoulder roll lifts it sideways, elbow ~1.5 is a straight arm).
The `Designer` holds the robot facts the designs need (nominal heights, rest hand positions).
"""

from __future__ import annotations

import mujoco
import numpy as np

from sonic_ray.motion.synth_gait import (
    Step,
    envelope,
    foot_tracks,
    keyframes,
    pelvis_over_feet,
    stance_pose,
    support_weight,
)
from sonic_ray.motion.synth_ik import FOOT_Z, MotionPlan
from sonic_ray.robots.spec import RobotSpec

HALF_WIDTH = 0.1185  # lateral ankle offset in the G1 default pose
SIDES = ("left", "right")


class Designer:
    """Builds plans for one robot; facts derived once from its model in the default pose."""

    def __init__(self, model: mujoco.MjModel, robot: RobotSpec):
        self.model, self.robot = model, robot
        self.default = np.asarray(robot.default_joint_pos, dtype=np.float64)
        data = mujoco.MjData(model)
        data.qpos[:] = np.concatenate([robot.default_root_pos, robot.default_root_quat, self.default])
        mujoco.mj_kinematics(model, data)
        ankle_z = data.xpos[model.body("left_ankle_roll_link").id, 2]
        # Pelvis height that puts the default-pose feet at FOOT_Z (about 0.758 m for the G1).
        self.pelvis_z = float(robot.default_root_pos[2] - (ankle_z - FOOT_Z))
        self._data = data
        self.rest_hands = self.hands_in_torso(self.default)

    def j(self, name: str) -> int:
        return self.robot.joint_index(name)

    def hands_in_torso(self, joint_pos: np.ndarray) -> np.ndarray:
        """(2, 3) hand points (vr sites) in the torso frame for a joint configuration."""
        d, m = self._data, self.model
        d.qpos[7:] = joint_pos
        mujoco.mj_kinematics(m, d)
        tid = m.body("torso_link").id
        rot = d.xmat[tid].reshape(3, 3)
        return np.stack([rot.T @ (d.site_xpos[m.site(f"vr_{s}_hand").id] - d.xpos[tid]) for s in SIDES])

    # ---- base plans --------------------------------------------------------------------------
    def standing(self, t: np.ndarray) -> MotionPlan:
        """Feet side by side at the origin, pelvis at its nominal height, default posture."""
        n = len(t)
        feet, yaw = stance_pose(0.0, 0.0, 0.0, HALF_WIDTH)
        foot_pos = np.zeros((2, n, 3))
        foot_pos[:, :, :2] = feet[:, None, :]
        foot_pos[:, :, 2] = FOOT_Z
        pelvis = np.zeros((n, 3))
        pelvis[:, 2] = self.pelvis_z
        return MotionPlan(
            foot_pos=foot_pos,
            foot_yaw=np.repeat(yaw[:, None], n, axis=1),
            pelvis_pos=pelvis,
            pelvis_rpy=np.zeros((n, 3)),
            torso_rpy=np.zeros((n, 3)),
            posture=np.tile(self.default, (n, 1)),
        )

    def arm(self, plan: MotionPlan, side: str, joint: str, values) -> None:
        """Set one arm joint of the posture, mirrored for the right side (roll and yaw flip)."""
        sign = (
            -1.0
            if side == "right" and joint in ("shoulder_roll", "shoulder_yaw", "wrist_roll", "wrist_yaw")
            else 1.0
        )
        plan.posture[:, self.j(f"{side}_{joint}_joint")] = sign * np.asarray(values)

    def hands_along_posture(self, plan: MotionPlan, offset_left, offset_right, *, sides=SIDES) -> None:
        """Hand targets = where the posture puts the hands, plus torso-frame offsets (T, 3).

        Keying hands and posture together keeps the two tasks in agreement during big arm moves
        (a straight-line hand path and a joint-space blend would pull apart); the offsets add the
        Cartesian part of the gesture (a wave, a sweep) that the hand task then enforces.
        """
        base = np.stack([self.hands_in_torso(q) for q in plan.posture], axis=1)
        plan.hand_pos = base + np.stack([np.asarray(offset_left), np.asarray(offset_right)])
        plan.hand_on = tuple(s in sides for s in SIDES)

    def gait(
        self,
        t: np.ndarray,
        steps: list[Step],
        *,
        lift: float = 0.07,
        sway: float = 0.6,
        shift: float = 0.35,
        crouch: float = 0.015,
        arm_swing: float = 1.2,
    ) -> MotionPlan:
        """Stepping plan: planted feet between swings, pelvis leaning over the stance foot."""
        fps = 1.0 / (t[1] - t[0])
        plan = self.standing(t)
        start_xy, start_yaw = stance_pose(0.0, 0.0, 0.0, HALF_WIDTH)
        foot_pos, foot_yaw = foot_tracks(t, start_xy, start_yaw, steps, lift=lift)
        foot_pos[:, :, 2] += FOOT_Z
        w = support_weight(t, steps, shift=shift)
        xy, yaw = pelvis_over_feet(t, foot_pos, foot_yaw, w, sway=sway, fps=fps)
        active = envelope(t, steps[0].t0 - shift, steps[-1].t1 + shift, shift)
        plan.foot_pos, plan.foot_yaw = foot_pos, foot_yaw
        plan.pelvis_pos[:, :2] = xy
        plan.pelvis_pos[:, 2] = self.pelvis_z - crouch * active
        plan.pelvis_rpy[:, 2] = yaw
        plan.torso_rpy[:, 2] = yaw
        heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
        fwd = [np.sum((foot_pos[f, :, :2] - xy) * heading, axis=1) for f in (0, 1)]
        for f, side in enumerate(SIDES):
            self.arm(
                plan,
                side,
                "shoulder_pitch",
                self.default[self.j(f"{side}_shoulder_pitch_joint")]
                + arm_swing * (fwd[f] - fwd[1 - f]) * 0.5,
            )
        return plan


def walk_steps(poses, *, first_foot: int, t_start: float, swing: float, gap: float) -> list[Step]:
    """Alternating steps onto a path of body poses (x, y, yaw); a last step brings the feet together.

    Step k puts foot (first_foot + k) % 2 beside pose k; after the last pose the trailing foot
    joins the leading one, so the clip ends standing square.
    """
    steps, t0 = [], t_start
    for k, (x, y, yaw) in enumerate(poses):
        f = (first_foot + k) % 2
        feet, _ = stance_pose(x, y, yaw, HALF_WIDTH)
        steps.append(Step(f, t0, t0 + swing, feet[f, 0], feet[f, 1], yaw))
        t0 += swing + gap
    f = (first_foot + len(poses)) % 2
    x, y, yaw = poses[-1]
    feet, _ = stance_pose(x, y, yaw, HALF_WIDTH)
    steps.append(Step(f, t0, t0 + swing, feet[f, 0], feet[f, 1], yaw))
    return steps


# ---- the designs: (designer, t) -> MotionPlan ---------------------------------------------------
def stand_idle(d: Designer, t):
    p = d.standing(t)
    e = envelope(t, 0.5, t[-1] - 0.5, 1.0)
    p.pelvis_pos[:, 2] += 0.004 * np.sin(2 * np.pi * t / 3.5) * e
    p.pelvis_pos[:, 1] += 0.012 * np.sin(2 * np.pi * t / 5.0) * e
    p.torso_rpy[:, 1] = 0.03 * np.sin(2 * np.pi * t / 3.5) * e
    p.torso_rpy[:, 2] = 0.12 * np.sin(2 * np.pi * t / 6.0) * e
    for s in SIDES:
        d.arm(p, s, "shoulder_pitch", 0.2 + 0.05 * np.sin(2 * np.pi * t / 3.5) * e)
    return p


def weight_shift(d: Designer, t):
    p = d.standing(t)
    s = np.sin(2 * np.pi * (t - 1.0) / 4.0) * envelope(t, 1.0, t[-1] - 1.0, 1.0)
    p.pelvis_pos[:, 1] = 0.08 * s
    p.pelvis_pos[:, 2] -= 0.015 * s**2
    p.torso_rpy[:, 0] = -0.06 * s
    for side, sign in zip(SIDES, (1.0, -1.0)):
        d.arm(p, side, "shoulder_roll", 0.2 + 0.15 * np.clip(-sign * s, 0.0, None))
    return p


def squat(d: Designer, t):
    p = d.standing(t)
    keys_t, keys_v = [0.0, 0.8], [0.0, 0.0]
    for k in range(3):
        t0 = 0.8 + 3.0 * k
        keys_t += [t0 + 1.2, t0 + 1.6, t0 + 2.8]
        keys_v += [1.0, 1.0, 0.0]
    depth = keyframes(t, keys_t, keys_v)
    p.pelvis_pos[:, 2] -= 0.22 * depth
    p.pelvis_pos[:, 0] -= 0.07 * depth
    p.pelvis_rpy[:, 1] = 0.35 * depth
    p.torso_rpy[:, 1] = 0.30 * depth
    for s in SIDES:
        d.arm(p, s, "shoulder_pitch", 0.2 - 1.4 * depth)
        d.arm(p, s, "elbow", 0.6 + 0.7 * depth)
    return p


def arm_raise_front(d: Designer, t):
    p = d.standing(t)
    keys = [0.0, 1.0, 2.5, 4.0, 4.8, 6.2, 7.2]
    for s in SIDES:
        d.arm(p, s, "shoulder_pitch", keyframes(t, keys, [0.2, 0.2, -1.5, -2.8, -2.8, -1.5, 0.2]))
        d.arm(p, s, "shoulder_roll", keyframes(t, keys, [0.2, 0.2, 0.1, 0.35, 0.35, 0.1, 0.2]))
        d.arm(p, s, "elbow", keyframes(t, keys, [0.6, 0.6, 1.45, 1.4, 1.4, 1.45, 0.6]))
    p.torso_rpy[:, 1] = keyframes(t, keys, [0.0, 0.0, 0.0, -0.08, -0.08, 0.0, 0.0])
    return p


def arm_raise_side(d: Designer, t):
    p = d.standing(t)
    keys = [0.0, 1.0, 2.5, 3.5, 4.5, 5.5, 7.0]
    for s in SIDES:
        d.arm(p, s, "shoulder_roll", keyframes(t, keys, [0.2, 0.2, 1.5, 1.5, 2.1, 1.5, 0.2]))
        d.arm(p, s, "elbow", keyframes(t, keys, [0.6, 0.6, 1.45, 1.45, 1.4, 1.45, 0.6]))
        d.arm(p, s, "shoulder_yaw", keyframes(t, keys, [0.0, 0.0, 0.0, 0.0, 0.3, 0.0, 0.0]))
    return p


def _wave(d: Designer, t, sides):
    p = d.standing(t)
    up = envelope(t, 0.8, t[-1] - 0.5, 1.2)
    pose = d.default.copy()
    for s in sides:
        sign = 1.0 if s == "left" else -1.0
        pose[d.j(f"{s}_shoulder_roll_joint")] = sign * 1.2
        pose[d.j(f"{s}_shoulder_yaw_joint")] = sign * 1.5
        pose[d.j(f"{s}_shoulder_pitch_joint")] = -0.2
        pose[d.j(f"{s}_elbow_joint")] = 0.25
    p.posture = d.default + up[:, None] * (pose - d.default)
    # Side to side in the torso frame, in phase for both hands, on a slight arc about the elbow.
    osc = np.sin(2 * np.pi * 1.25 * (t - 2.0)) * envelope(t, 2.0, t[-1] - 1.7, 0.4)
    offset = np.stack([np.zeros_like(osc), 0.07 * osc, -0.02 * osc**2], axis=1)
    d.hands_along_posture(p, offset, offset, sides=sides)
    p.torso_rpy[:, 0] = -0.03 * osc * (len(sides) == 1)
    return p


def wave_right(d, t):
    return _wave(d, t, ("right",))


def wave_left(d, t):
    return _wave(d, t, ("left",))


def wave_both(d, t):
    return _wave(d, t, SIDES)


def reach_forward(d: Designer, t):
    p = d.standing(t)
    keys = [0.0, 0.8, 2.2, 6.0, 7.4]
    for s in SIDES:
        d.arm(p, s, "shoulder_pitch", keyframes(t, keys, [0.2, 0.2, -1.2, -1.2, 0.2]))
        d.arm(p, s, "shoulder_roll", keyframes(t, keys, [0.2, 0.2, 0.45, 0.45, 0.2]))
        d.arm(p, s, "elbow", keyframes(t, keys, [0.6, 0.6, 0.9, 0.9, 0.6]))
    # Both hands sweep together, left then right, then up and down, in straight lines.
    sweep = keyframes(
        t,
        [2.2, 3.2, 4.4, 5.2, 6.0],
        [[0, 0, 0], [0, 0.06, 0.04], [0, -0.06, 0.04], [-0.05, 0, -0.1], [0, 0, 0]],
    )
    d.hands_along_posture(p, sweep, sweep, sides=SIDES)
    p.torso_rpy[:, 1] = keyframes(t, keys, [0.0, 0.0, 0.08, 0.08, 0.0])
    p.pelvis_pos[:, 0] = keyframes(t, keys, [0.0, 0.0, -0.02, -0.02, 0.0])
    return p


def torso_twist(d: Designer, t):
    p = d.standing(t)
    e = envelope(t, 1.0, t[-1] - 1.0, 1.0)
    s = np.sin(2 * np.pi * (t - 1.0) / 3.0) * e
    p.torso_rpy[:, 2] = 0.55 * s
    p.pelvis_rpy[:, 2] = 0.06 * s
    for side, sign in zip(SIDES, (1.0, -1.0)):
        d.arm(p, side, "shoulder_pitch", 0.2 + 0.5 * sign * s)
        d.arm(p, side, "shoulder_roll", 0.2 + 0.1 * e + 0.1 * s**2)  # arms a little out, clear of the hips
    return p


def bow(d: Designer, t):
    p = d.standing(t)
    keys = [0.0, 1.0, 2.5, 3.5, 5.0, 6.0]
    b = keyframes(t, keys, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    p.pelvis_rpy[:, 1] = 0.4 * b
    p.torso_rpy[:, 1] = 0.85 * b
    p.pelvis_pos[:, 0] -= 0.06 * b
    p.pelvis_pos[:, 2] -= 0.02 * b
    return p


def step_in_place(d: Designer, t):
    steps = [Step(k % 2, 1.5 + 0.9 * k, 2.05 + 0.9 * k, 0.0, 0.0, 0.0) for k in range(9)]
    start_xy, _ = stance_pose(0.0, 0.0, 0.0, HALF_WIDTH)
    steps = [Step(s.foot, s.t0, s.t1, *start_xy[s.foot], 0.0) for s in steps]
    return d.gait(t, steps, lift=0.08, arm_swing=0.0)


def side_step(d: Designer, t):
    poses, y = [], 0.0
    for direction in (1, 1, -1, -1):
        y += 0.12 * direction
        poses.append((0.0, y, 0.0))
    steps, t0 = [], 1.2
    for y_body, direction in zip([p[1] for p in poses], (1, 1, -1, -1)):
        lead, trail = (0, 1) if direction > 0 else (1, 0)
        feet, _ = stance_pose(0.0, y_body, 0.0, HALF_WIDTH)
        steps.append(Step(lead, t0, t0 + 0.6, feet[lead, 0], feet[lead, 1], 0.0))
        steps.append(Step(trail, t0 + 0.95, t0 + 1.55, feet[trail, 0], feet[trail, 1], 0.0))
        t0 += 1.9
    return d.gait(t, steps, lift=0.06, sway=0.5, crouch=0.025, arm_swing=0.0)


def walk_forward(d: Designer, t):
    poses = [(0.15 * (k + 1), 0.0, 0.0) for k in range(12)]
    return d.gait(t, walk_steps(poses, first_foot=0, t_start=1.0, swing=0.5, gap=0.25), sway=0.5)


def walk_backward(d: Designer, t):
    poses = [(-0.1 * (k + 1), 0.0, 0.0) for k in range(8)]
    return d.gait(t, walk_steps(poses, first_foot=1, t_start=1.0, swing=0.5, gap=0.3), sway=0.5, lift=0.06)


def walk_curve_left(d: Designer, t):
    radius, d_s = 1.2, 0.13
    poses = []
    for k in range(12):
        a = d_s * (k + 1) / radius
        poses.append((radius * np.sin(a), radius * (1.0 - np.cos(a)), a))
    return d.gait(t, walk_steps(poses, first_foot=0, t_start=1.0, swing=0.5, gap=0.3), sway=0.5)


def _turn(d: Designer, t, per_step: float, n: int):
    poses = [(0.0, 0.0, per_step * (k + 1)) for k in range(n)]
    first = 0 if per_step > 0 else 1
    return d.gait(
        t, walk_steps(poses, first_foot=first, t_start=1.0, swing=0.5, gap=0.3), lift=0.05, arm_swing=0.0
    )


def turn_left(d, t):
    return _turn(d, t, 0.35, 9)


def turn_right(d, t):
    return _turn(d, t, -0.4, 5)


# name -> (duration in seconds, design)
DESIGNS = {
    "stand_idle": (6.0, stand_idle),
    "weight_shift": (10.0, weight_shift),
    "squat": (10.6, squat),
    "arm_raise_front": (8.0, arm_raise_front),
    "arm_raise_side": (8.0, arm_raise_side),
    "wave_right": (6.0, wave_right),
    "wave_left": (6.0, wave_left),
    "wave_both": (6.0, wave_both),
    "reach_forward": (8.0, reach_forward),
    "torso_twist": (8.0, torso_twist),
    "bow": (7.0, bow),
    "step_in_place": (10.5, step_in_place),
    "side_step": (10.0, side_step),
    "walk_forward": (12.0, walk_forward),
    "walk_backward": (9.0, walk_backward),
    "walk_curve_left": (12.5, walk_curve_left),
    "turn_left": (10.0, turn_left),
    "turn_right": (7.0, turn_right),
}
