"""Small real inputs for the viewer tests: a motion store (one clip with SMPL joints, one past a
joint limit), a checkpoint of an untrained policy (tests/deploy's builder: the format `sonic-ray
train` saves), viewer apps on a live viser server, and a thread that plays them."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from sonic_ray.motion.store import MotionClip, write_store
from sonic_ray.robots import G1

LIMIT_JOINT = "left_knee_joint"


def _deploy_builders():
    path = Path(__file__).resolve().parents[1] / "deploy" / "deploy_builders.py"
    spec = importlib.util.spec_from_file_location("view_deploy_builders", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def view_store(path, *, fps=50.0, seconds=(1.0, 0.6, 0.8)) -> Path:
    """Clips `sway0..`: near the default pose with joint sways and a slow forward drift; `sway1`
    stores SMPL joints; `sway2` holds LIMIT_JOINT 0.1 rad past its upper limit on frames 5..9."""
    lo, hi, default = (
        np.asarray(a, dtype=np.float64) for a in (G1.joint_lower, G1.joint_upper, G1.default_joint_pos)
    )
    rng = np.random.default_rng(0)
    clips = []
    for c, sec in enumerate(seconds):
        t = np.arange(int(sec * fps) + 1) / fps
        root = np.stack([0.2 * t, 0 * t, np.full_like(t, G1.default_root_pos[2])], axis=1)
        quat = np.tile([1.0, 0, 0, 0], (len(t), 1))
        joints = np.clip(
            default + 0.1 * np.sin(2.0 * t[:, None] + rng.uniform(0, 6, G1.num_joints)), lo + 0.01, hi - 0.01
        )
        extra = {}
        if c == 1:
            extra["smpl_joints"] = (root[:, None, :] + rng.normal(scale=0.3, size=(1, 24, 3))).astype(
                np.float32
            )
        if c == 2:
            joints[5:10, G1.joint_index(LIMIT_JOINT)] = hi[G1.joint_index(LIMIT_JOINT)] + 0.1
        clips.append(
            MotionClip(
                f"sway{c}",
                "test",
                fps,
                root.astype(np.float32),
                quat.astype(np.float32),
                joints.astype(np.float32),
                **extra,
            )
        )
    write_store(path, clips, joint_names=G1.joint_names)
    return Path(path)


def checkpoint(root: Path, store: Path) -> Path:
    """A checkpoint of an untrained policy on `store` (all three encoders), as training saves it."""
    b = _deploy_builders()
    ckpt, _ = b.write_checkpoint(Path(root) / "ckpt", b.config(store), action_gain=30.0)
    return ckpt


class Player:
    """Calls app.tick at rate_hz in a thread (what `serve` does on the main thread) until stopped."""

    def __init__(self, server, app, rate_hz: float = 30.0):
        from sonic_ray.view.server import serve

        self._stop = threading.Event()
        self.thread = threading.Thread(
            target=serve,
            args=(server, app.tick),
            kwargs={"rate_hz": rate_hz, "stop": self._stop.is_set},
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=30)
