"""The embedded default data set: synthetic G1 clips, validated and written to a store once.

`ensure_synth_store(path)` is what training uses when no store is configured: it builds the store
on first use (a few seconds) and reuses it afterwards. Writing goes through the same validation
and atomic store writer as `motions import`, so the synthetic set is held to the same checks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sonic_ray.motion.robot_context import robot_context
from sonic_ray.motion.store import MotionClip, store_info, write_store
from sonic_ray.motion.validate import validate_clip


def build_synth_store(
    out: str | Path,
    *,
    robot: str = "g1",
    fps: float = 50.0,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """Synthesise every clip, validate it against the robot (limits and FK) and write `out`."""
    from sonic_ray.motion.synth import synth_all

    joint_names, lower, upper, _ = robot_context(robot)
    clips = []
    for raw in synth_all(fps=fps, robot=robot, progress=progress):
        clip = MotionClip(**raw)
        clips.append(validate_clip(clip, joint_names=joint_names, lower=lower, upper=upper))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_store(out, clips, joint_names=joint_names, append=False)
    return store_info(out)


def ensure_synth_store(path: str | Path, *, robot: str = "g1") -> Path:
    """Return `path`, building the synthetic store there first if it does not exist yet."""
    path = Path(path)
    if not path.is_file():
        build_synth_store(path, robot=robot)
    return path
