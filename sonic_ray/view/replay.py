"""Kinematic replay of a motion store: what `sonic-ray view motions` shows, without a GUI.

A clip is read alone (its row group), posed once for all its frames by the project's FK
(`TorchFK` on the model built from the robot table), at the store's native frame rate: frame k
of the viewer is frame k of the store. The VR 3-point targets are the robot table's VR points on
the posed bodies (what the teleop encoder is given in training); SMPL joints are shown when the
clip stores them. Joint-limit violations compare each frame with the table's joint ranges.
"""

from __future__ import annotations

import difflib
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sonic_ray.motion.store import MotionClip, StoreError, iter_store, store_info
from sonic_ray.robots import TorchFK, load_model
from sonic_ray.robots.spec import RobotSpec

SPEEDS = (0.25, 0.5, 1.0, 2.0)


class ClipNotFound(KeyError):
    """A clip name that the store does not hold; the message names the store and near matches."""

    def __str__(self) -> str:
        return str(self.args[0])


class MotionStore:
    """A store opened for viewing: its footer (names, fps, frames) now, clips when asked."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: motion store not found")
        try:
            info = store_info(self.path)
        except (StoreError, OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError)
            raise StoreError(f"{self.path}: cannot open as a motion store ({e})") from e
        if not info["clips"]:
            raise StoreError(f"{self.path}: the store holds no clips")
        self.joint_names: list[str] = list(info["joint_names"])
        self.clips: list[dict] = info["clips"]
        self.names: list[str] = [c["name"] for c in self.clips]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            near = difflib.get_close_matches(name, self.names, n=5, cutoff=0.6)
            hint = f"; did you mean {near}?" if near else f"; it holds {len(self.names)} clips"
            raise ClipNotFound(f"{self.path}: no clip named {name!r}{hint}") from None

    def read(self, name: str) -> MotionClip:
        """One clip, reading only its row group (shard (k, n) of n clips is clip k alone)."""
        k = self.index(name)
        return next(iter_store(self.path, shard=(k, len(self.names))))


def search(names: list[str], query: str) -> list[str]:
    """Names holding every whitespace-separated word of `query` (case-insensitive), store order."""
    words = query.lower().split()
    return [n for n in names if all(w in n.lower() for w in words)]


@dataclass
class ClipPoses:
    """A clip posed for every frame. body_pos_w (T,B,3), body_quat_w (T,B,4) wxyz in the robot
    table's body order; vr_pos_w (T,P,3) the table's VR points; smpl_joints (T,24,3) or None;
    joint_pos (T,J); root_height (T,); violations: per frame, [(joint, radians past the limit)]."""

    name: str
    fps: float
    body_pos_w: np.ndarray
    body_quat_w: np.ndarray
    vr_pos_w: np.ndarray
    smpl_joints: np.ndarray | None
    joint_pos: np.ndarray
    root_height: np.ndarray
    violations: list[list[tuple[str, float]]]

    @property
    def num_frames(self) -> int:
        return int(self.body_pos_w.shape[0])

    @property
    def duration_s(self) -> float:
        return (self.num_frames - 1) / self.fps


def joint_limit_violations(
    joint_pos: np.ndarray, lower: np.ndarray, upper: np.ndarray, names, tol: float = 1e-4
) -> list[list[tuple[str, float]]]:
    """Per frame of joint_pos (T,J): [(joint name, radians past its limit)] for joints more than
    `tol` outside [lower, upper] (signed: negative below the lower limit)."""
    below, above = joint_pos - lower, joint_pos - upper
    past = np.where(below < -tol, below, np.where(above > tol, above, 0.0))
    return [[(names[j], float(past[t, j])) for j in np.flatnonzero(past[t])] for t in range(len(past))]


class Poser:
    """Poses clips with the robot's own model and FK; keeps the last few posed clips."""

    def __init__(self, robot_name: str = "g1", *, cache: int = 8):
        self.model, self.robot = load_model(robot_name)
        self.fk = TorchFK(self.model, self.robot, dtype=torch.float64)
        self.vr_table = self.fk.point_table(self.robot.vr_points)
        self._cache: OrderedDict[str, ClipPoses] = OrderedDict()
        self._size = cache

    @property
    def spec(self) -> RobotSpec:
        return self.robot

    def check_joints(self, store: MotionStore) -> None:
        if store.joint_names != list(self.robot.joint_names):
            raise StoreError(
                f"{store.path}: its joints {store.joint_names[:3]}... are not robot "
                f"{self.robot.name!r}'s {list(self.robot.joint_names)[:3]}... (order matters)"
            )

    def pose(self, clip: MotionClip) -> ClipPoses:
        if clip.name in self._cache:
            self._cache.move_to_end(clip.name)
            return self._cache[clip.name]
        t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
        with torch.no_grad():
            bp, bq = self.fk.forward(t(clip.root_pos), t(clip.root_quat), t(clip.joint_pos))
            vr = self.fk.points(bp, bq, self.vr_table)
        r = self.robot
        poses = ClipPoses(
            clip.name,
            float(clip.fps),
            bp.numpy(),
            bq.numpy(),
            vr.numpy(),
            None if clip.smpl_joints is None else np.asarray(clip.smpl_joints, dtype=np.float64),
            np.asarray(clip.joint_pos, dtype=np.float64),
            np.asarray(clip.root_pos[:, 2], np.float64),
            joint_limit_violations(
                np.asarray(clip.joint_pos, dtype=np.float64),
                np.asarray(r.joint_lower),
                np.asarray(r.joint_upper),
                r.joint_names,
            ),
        )
        self._cache[clip.name] = poses
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return poses


@dataclass
class Playback:
    """The play head of one clip: time in seconds, play/pause, speed, loop. `advance(dt)` moves it
    by dt x speed of wall time; past the end it wraps (loop) or stops on the last frame (paused)."""

    num_frames: int
    fps: float
    time_s: float = 0.0
    playing: bool = True
    speed: float = 1.0
    loop: bool = True

    @property
    def duration_s(self) -> float:
        return (self.num_frames - 1) / self.fps

    @property
    def frame(self) -> int:
        return min(self.num_frames - 1, max(0, int(math.floor(self.time_s * self.fps + 1e-6))))

    def seek(self, frame: int) -> None:
        self.time_s = min(max(int(frame), 0), self.num_frames - 1) / self.fps

    def advance(self, dt: float) -> int:
        if self.playing and self.num_frames > 1:
            self.time_s += dt * self.speed
            end = self.duration_s + 1.0 / self.fps  # the last frame is shown for one frame time too
            if self.time_s >= end:
                if self.loop:
                    self.time_s %= end
                else:
                    self.time_s, self.playing = self.duration_s, False
        return self.frame
