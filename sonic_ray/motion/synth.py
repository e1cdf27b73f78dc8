"""The embedded default motion set: clips synthesised from the robot model, no data files.

Why: training, tests and demos need reference motions on a fresh checkout, without downloads
or licensed data. Each clip is a hand-designed plan (feet, pelvis, torso, hands; see
`synth_clips`) solved to joint angles with whole-body IK on the robot's own MuJoCo model
(`synth_ik`), so feet stay planted in stance, swing feet lift clear, and every joint stays
inside its limits. Building is deterministic (same arrays on every call); callers cache the
result in a motion store rather than rebuilding it.

The clip dicts carry the `MotionClip` field names (name, source, format, fps, root_pos,
root_quat, joint_pos), so `MotionClip(**clip)` works.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from sonic_ray.motion.synth_clips import DESIGNS, Designer
from sonic_ray.motion.synth_ik import PlanSolver
from sonic_ray.robots.registry import load_model

SYNTH_CLIPS: tuple[str, ...] = tuple(DESIGNS)
SOURCE_PREFIX = "synth"


class SynthBuilder:
    """Model, IK solver and designer for one robot, reused across clips (build once, solve many)."""

    def __init__(self, robot: str = "g1"):
        self.model, self.robot = load_model(robot)
        self.designer = Designer(self.model, self.robot)
        self.solver = PlanSolver(self.model, self.robot)

    def clip(self, name: str, *, fps: float = 50.0, duration_s: float | None = None) -> dict:
        """One clip as a dict: root_pos (T, 3), root_quat (T, 4) wxyz, joint_pos (T, J), float32.

        duration_s keeps only the clip's first seconds (for quick checks); it cannot extend it.
        """
        if name not in DESIGNS:
            raise KeyError(f"unknown synthetic clip {name!r}; known clips: {list(SYNTH_CLIPS)}")
        if not fps > 0:
            raise ValueError(f"synth clip {name!r}: fps must be positive, got {fps}")
        full_s, design = DESIGNS[name]
        length_s = full_s if duration_s is None else float(duration_s)
        if not 0 < length_s <= full_s:
            raise ValueError(f"synth clip {name!r}: duration_s must be in (0, {full_s}], got {duration_s}")
        t = np.arange(int(round(length_s * fps)) + 1, dtype=np.float64) / fps
        plan = design(self.designer, t)
        root_pos, root_quat, joint_pos = self.solver.solve(plan, name=name)
        return {
            "name": name,
            "source": f"{SOURCE_PREFIX}:{self.robot.name}",
            "format": SOURCE_PREFIX,
            "fps": float(fps),
            "root_pos": root_pos.astype(np.float32),
            "root_quat": root_quat.astype(np.float32),
            "joint_pos": joint_pos.astype(np.float32),
        }


def synth_clip(name: str, *, fps: float = 50.0, robot: str = "g1", duration_s: float | None = None) -> dict:
    """Build one named clip (see SYNTH_CLIPS)."""
    return SynthBuilder(robot).clip(name, fps=fps, duration_s=duration_s)


def synth_all(
    *,
    fps: float = 50.0,
    robot: str = "g1",
    names=None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[dict]:
    """Build every clip (or `names`), in SYNTH_CLIPS order; progress(i, n, name) before each."""
    names = list(SYNTH_CLIPS if names is None else names)
    builder = SynthBuilder(robot)
    clips = []
    for i, name in enumerate(names):
        if progress is not None:
            progress(i, len(names), name)
        clips.append(builder.clip(name, fps=fps))
    return clips


def clip_contact_stats(model: mujoco.MjModel, clip: dict, *, stance_height: float = 0.01) -> dict:
    """Foot quality of a clip, measured with MuJoCo forward kinematics on `model`.

    For each frame and foot: the lowest point of the foot's collision capsules (sole height) and
    the horizontal speed of the foot body. A foot counts as in stance when its sole is below
    `stance_height` on both frames of a difference. Returns max_penetration_m (how far any sole
    dips below z = 0, 0 if never), max_stance_slip_mps, sole_height (T, 2), foot_xy (T, 2, 2).
    """
    data = mujoco.MjData(model)
    feet = [model.body(f"{s}_ankle_roll_link").id for s in ("left", "right")]
    geoms = [
        [
            g
            for g in range(model.ngeom)
            if model.geom_bodyid[g] == b and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE
        ]
        for b in feet
    ]
    t_count = clip["root_pos"].shape[0]
    sole = np.zeros((t_count, 2))
    foot_xy = np.zeros((t_count, 2, 2))
    for i in range(t_count):
        data.qpos[:3], data.qpos[3:7], data.qpos[7:] = (
            clip["root_pos"][i],
            clip["root_quat"][i],
            clip["joint_pos"][i],
        )
        mujoco.mj_kinematics(model, data)
        for f in (0, 1):
            g = np.array(geoms[f])
            axis_z = data.geom_xmat[g, 8]  # world z of each capsule's local z axis
            half = model.geom_size[g, 1]
            low = data.geom_xpos[g, 2] - np.abs(axis_z) * half - model.geom_size[g, 0]
            sole[i, f] = low.min()
            foot_xy[i, f] = data.xpos[feet[f], :2]
    speed = np.linalg.norm(np.diff(foot_xy, axis=0), axis=-1) * float(clip["fps"])
    stance = (sole[1:] < stance_height) & (sole[:-1] < stance_height)
    return {
        "max_penetration_m": float(max(0.0, -sole.min())),
        "max_stance_slip_mps": float(speed[stance].max()) if stance.any() else 0.0,
        "sole_height": sole,
        "foot_xy": foot_xy,
    }
