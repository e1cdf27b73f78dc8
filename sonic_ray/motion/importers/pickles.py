"""Robot-motion pickles: SONIC/PHC (`root_trans_offset`, `root_rot`, `dof`) and GMR (`root_pos`,
`root_rot`, `dof_pos`). Both store root rotations xyzw; we convert to wxyz here, once.

A file holds either one clip dict or {clip_name: clip_dict}. Loading goes through
`safe_pickle.safe_load`, never plain `pickle.load`.
"""

from __future__ import annotations

import numpy as np

from sonic_ray.motion.safe_pickle import UnsafePickleError, safe_load
from sonic_ray.motion.store import MotionClip
from sonic_ray.motion.validate import ClipRejected
from sonic_ray.utils.rotations import xyzw_to_wxyz

SONIC_KEYS = ("root_trans_offset", "root_rot", "dof")
GMR_KEYS = ("root_pos", "root_rot", "dof_pos")


def _kind(d) -> str | None:
    if not isinstance(d, dict):
        return None
    if all(k in d for k in SONIC_KEYS):
        return "sonic_pkl"
    if all(k in d for k in GMR_KEYS):
        return "gmr_pkl"
    return None


def _array(d: dict, key: str, source: str) -> np.ndarray:
    try:
        return np.asarray(d[key], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ClipRejected(source, key, f"not a numeric array ({e})") from None


def _fps(d: dict, source: str, default: float | None) -> float:
    if "fps" in d:
        fps = np.asarray(d["fps"])
        if fps.size != 1 or not np.issubdtype(fps.dtype, np.number):
            raise ClipRejected(source, "fps", f"expected one number, got {d['fps']!r}")
        return float(fps.reshape(-1)[0])
    if default is None:
        raise ClipRejected(source, "fps", "missing (pass --fps)")
    return float(default)


def _clip(d: dict, kind: str, name: str, source: str, fps: float | None) -> MotionClip:
    pos_key, dof_key = ("root_trans_offset", "dof") if kind == "sonic_pkl" else ("root_pos", "dof_pos")
    rot = _array(d, "root_rot", source)
    if rot.ndim != 2 or rot.shape[1] != 4:
        raise ClipRejected(source, "root_rot", f"shape {rot.shape}, expected (T, 4) xyzw")
    smpl = d.get("smpl_joints") if kind == "sonic_pkl" else None
    return MotionClip(
        name=name,
        source=source,
        format=kind,
        fps=_fps(d, source, fps),
        root_pos=_array(d, pos_key, source),
        root_quat=xyzw_to_wxyz(rot),
        joint_pos=_array(d, dof_key, source),
        smpl_joints=None if smpl is None else _array(d, "smpl_joints", source),
    )


def load_robot_pickle(path, *, name: str, fps: float | None = None) -> list[MotionClip | ClipRejected]:
    """Clips of one pickle file; a bad clip inside a multi-clip file comes back as ClipRejected."""
    source = str(path)
    try:
        obj = safe_load(path)
    except UnsafePickleError as e:
        raise ClipRejected(source, "pickle", str(e).removeprefix(f"{source}: ")) from None
    except Exception as e:  # truncated / corrupt stream
        raise ClipRejected(source, "pickle", f"cannot unpickle: {type(e).__name__}: {e}") from None
    kind = _kind(obj)
    if kind is not None:
        return [_clip(obj, kind, name, source, fps)]
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        out: list[MotionClip | ClipRejected] = []
        for key, d in obj.items():
            sub = f"{source}[{key}]"
            kind = _kind(d)
            try:
                if kind is None:
                    raise ClipRejected(
                        sub, "keys", f"need {SONIC_KEYS} (SONIC) or {GMR_KEYS} (GMR), got {sorted(d)}"
                    )
                out.append(_clip(d, kind, str(key), sub, fps))
            except ClipRejected as e:
                out.append(e)
        return out
    keys = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
    raise ClipRejected(source, "keys", f"not a SONIC/PHC or GMR motion pickle (found {keys})")
