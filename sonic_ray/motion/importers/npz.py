"""BeyondMimic / mjlab NPZ motions: world poses of every body plus joint positions.

The root is body 0 (the pelvis). The file's `body_pos_w` is kept on the clip for the FK check
(it tells us whether the joint order and robot match) but is not stored. Loaded with
allow_pickle=False: an NPZ member holding objects is refused by numpy.
"""

from __future__ import annotations

import zipfile

import numpy as np

from sonic_ray.motion.store import MotionClip
from sonic_ray.motion.validate import ClipRejected

NPZ_KEYS = ("fps", "joint_pos", "body_pos_w", "body_quat_w")


def load_mjlab_npz(path, *, name: str) -> MotionClip:
    """One clip per file; its own `fps` is authoritative (no override)."""
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise ClipRejected(source, "keys", f"missing {missing} (found {sorted(z.files)})")
            data = {k: z[k] for k in NPZ_KEYS}
    except ClipRejected:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ClipRejected(source, "npz", f"cannot read: {type(e).__name__}: {e}") from None
    body_pos, body_quat = data["body_pos_w"], data["body_quat_w"]
    if body_pos.ndim != 3 or body_pos.shape[2] != 3 or body_pos.shape[1] < 1:
        raise ClipRejected(source, "body_pos_w", f"shape {body_pos.shape}, expected (T, B, 3)")
    if body_quat.shape[:2] != body_pos.shape[:2] or body_quat.shape[-1] != 4:
        raise ClipRejected(
            source, "body_quat_w", f"shape {body_quat.shape}, expected {body_pos.shape[:2] + (4,)}"
        )
    file_fps = np.asarray(data["fps"]).reshape(-1)
    if file_fps.size != 1:
        raise ClipRejected(source, "fps", f"expected one number, got shape {np.shape(data['fps'])}")
    return MotionClip(
        name=name,
        source=source,
        format="mjlab_npz",
        fps=float(file_fps[0]),
        root_pos=body_pos[:, 0],
        root_quat=body_quat[:, 0],
        joint_pos=data["joint_pos"],
        body_pos_w=body_pos,
    )
