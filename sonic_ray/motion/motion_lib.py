"""Reference motions as contiguous tensors at the control rate, queried in batches.

Each env runner loads its shard (clips k::n) of the store once: every clip is resampled to the
control rate (50 Hz default; linear for positions and joints, slerp for the root rotation),
all clips are concatenated frame-wise with per-clip start offsets, and velocities are taken by
finite differences once, here, so a query is a gather plus one interpolation (the arithmetic is
`sonic_ray.motion.frames`, shared with the env's reference table and deployment). Queries take
(clip id, time in seconds) per env; times past a clip's end are held at its last frame.

Body poses come from an optional FK object (`fk.forward(root_pos, root_quat, joint_pos) ->
(body_pos_w, body_quat_w)`), evaluated on the interpolated state: the store holds only the
root and joints, which is all a simulator needs to reset, and FK keeps bodies consistent.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from sonic_ray.motion import lib_core
from sonic_ray.motion.frames import _rate, control_rate_frames, finite_diff_index, resample_plan
from sonic_ray.motion.sharded import clip_frames_fps, is_sharded
from sonic_ray.motion.store import iter_store, shard_indices, store_info, store_size


def store_control_frames(store_path, control_fps: float) -> np.ndarray:
    """(C_all,) control-rate frames of every clip of the store, from its footer only (no clip data):
    the layout the adaptive sampler's global bins are numbered in."""
    if is_sharded(store_path):  # two columns of the clip index, no per-clip dicts (100k: ~3 ms)
        return control_rate_frames(*clip_frames_fps(store_path), control_fps)
    clips = store_info(store_path)["clips"]
    return control_rate_frames(
        np.array([c["frames"] for c in clips]), np.array([c["fps"] for c in clips]), control_fps
    )


def _load_resampled(store_path, shard, control_fps: float, load_smpl: bool):
    """Read the shard and resample every clip to control_fps: (names, out_frames (C,), frames)
    with frames = root_pos_w (S,3), root_quat_w (S,4), joint_pos (S,J)[, smpl_joints (S,24,3)]."""
    return resample_clips(list(iter_store(store_path, shard=shard, smpl=load_smpl)), control_fps, load_smpl)


def resample_clips(clips, control_fps: float, load_smpl: bool = True):
    """`_load_resampled` for clips already in memory (MotionClip-like: name, fps, arrays)."""
    frames_n = np.array([c.num_frames for c in clips], dtype=np.int64)
    fps = np.array([c.fps for c in clips], dtype=np.float64)
    keys = dict(_RAW_KEYS)
    if not (load_smpl and all(c.smpl_joints is not None for c in clips)):
        del keys["smpl_joints"]
    arrays = {
        name: torch.as_tensor(np.concatenate([getattr(c, name) for c in clips]), dtype=torch.float32)
        for name in keys.values()
    }
    out_frames, frames = _resampled(arrays, keys, frames_n, fps, control_fps)
    return [c.name for c in clips], out_frames, frames


# MotionLib keys of the stored arrays (RawShard names)
_RAW_KEYS = {
    "root_pos_w": "root_pos",
    "root_quat_w": "root_quat",
    "joint_pos": "joint_pos",
    "smpl_joints": "smpl_joints",
}


def _resample_args(arrays: dict, keys: dict, frames_n, fps, control_fps: float, **plan):
    """`lib_core.resample_core`'s arguments for the MotionLib frames of clips (frames_n, fps (C,))
    from their native arrays (`arrays`: RawShard names -> (F, ...) float32 tensors, `keys`:
    MotionLib key -> RawShard name): the samples of `resample_plan(frames_n, fps, control_fps,
    **plan)` (linear, slerp for the root rotation) and the finite differences inside each clip's
    samples (`frames.clip_velocity` / `clip_angular_velocity`). Returns (samples per clip (C,),
    args)."""
    out_frames, i0, alpha = resample_plan(frames_n, fps, control_fps, **plan)
    held = out_frames if plan.get("count") is None else np.asarray(plan["count"], dtype=np.int64)
    prev, nxt, span = finite_diff_index(held)
    alpha = torch.as_tensor(alpha, dtype=torch.float32)
    args = (
        [arrays[name] for name in keys.values()],
        1,  # root_quat_w
        torch.as_tensor(i0),
        alpha,
        torch.as_tensor(prev),
        torch.as_tensor(nxt),
        _rate(span, control_fps, alpha),
        *lib_core.consts(torch.float32, torch.device("cpu")),
    )
    return held, args


_VEL_KEYS = ("root_lin_vel_w", "root_ang_vel_w", "joint_vel")


def _resampled(arrays: dict, keys: dict, frames_n, fps, control_fps: float, **plan):
    """The MotionLib frames (`_resample_args`; root and joint velocities in the world frame).
    Returns (samples per clip (C,), frames)."""
    held, args = _resample_args(arrays, keys, frames_n, fps, control_fps, **plan)
    return held, dict(zip((*keys, *_VEL_KEYS), lib_core.run(lib_core.resample_core, *args), strict=True))


def _segment_plan(raw, clips, first, count, control_fps: float):
    """from_segments' parts: (MotionLib keys -> RawShard names, clip lengths (C,), first held
    frames (C,), `_resample_args`)."""
    clips = np.asarray(clips, dtype=np.int64)
    first, count = np.asarray(first, dtype=np.int64), np.asarray(count, dtype=np.int64)
    frames_n, fps = raw.frames[clips], raw.fps[clips]
    length = control_rate_frames(frames_n, fps, control_fps)
    lo = np.maximum(first - 2, 0)
    n = np.minimum(first + count + 1, length - 1) - lo + 1
    keys = {k: v for k, v in _RAW_KEYS.items() if v in raw.arrays}
    arrays = {name: torch.from_numpy(raw.arrays[name]) for name in keys.values()}
    held, args = _resample_args(
        arrays, keys, frames_n, fps, control_fps, first=lo, count=n, raw_start=raw.start[clips]
    )
    return keys, length, lo, held, args


def segment_state(raw, clips, first, count, part, local, *, control_fps: float) -> dict:
    """`frame_state(MotionLib.from_segments(raw, clips, first, count, ...), part, local)` (S,) in
    one call (one TorchScript run: no MotionLib built), the same values bit for bit."""
    keys, length, lo, held, args = _segment_plan(raw, clips, first, count, control_fps)
    start = np.concatenate(([0], np.cumsum(held)[:-1]))
    res = lib_core.run(
        lib_core.segment_state_core,
        *args,
        torch.as_tensor(length),
        torch.as_tensor(start - lo),
        torch.as_tensor(part),
        torch.as_tensor(local),
        float(control_fps),
    )
    return dict(zip((*keys, *_VEL_KEYS), res, strict=True))


class MotionLib:
    """A shard of the motion store on `device`, resampled to `control_fps`.

    Attributes: names (C clip names), joint_names (J), clip_length_s (C,), clip_frames (C,)
    control-rate frame counts, clip_start (C,) offsets into the concatenated frame tensors,
    store_index (C,) each clip's index in the whole store.
    """

    def __init__(
        self,
        store_path,
        *,
        control_fps: float = 50.0,
        shard: tuple[int, int] | None = None,
        device: str | torch.device = "cpu",
        fk=None,
        load_smpl: bool = True,
    ):
        self.control_fps = float(control_fps)
        self.device = torch.device(device)
        self.fk = fk
        self.joint_names, num_clips = store_size(store_path)
        self.store_index = torch.as_tensor(shard_indices(num_clips, shard), dtype=torch.long)
        if len(self.store_index) == 0:
            raise ValueError(f"{store_path}: shard {shard} holds no clips")
        self.names, out_frames, frames = _load_resampled(store_path, shard, self.control_fps, load_smpl)
        pa.default_memory_pool().release_unused()  # arrow's allocator keeps freed read buffers
        self._setup(out_frames, frames)

    @classmethod
    def from_clips(cls, clips, *, control_fps: float, store_index, device="cpu", fk=None) -> MotionLib:
        """A MotionLib over clips already in memory (the cached reference builds one per batch of
        clips it computes); store_index (C,) their indices in the store."""
        self = cls.__new__(cls)
        self.control_fps, self.device, self.fk = float(control_fps), torch.device(device), fk
        self.store_index = torch.as_tensor(store_index, dtype=torch.long)
        self.names, out_frames, frames = resample_clips(clips, self.control_fps)
        self.joint_names = []
        self._setup(out_frames, frames)
        return self

    @classmethod
    def from_segments(cls, raw, clips, first, count, *, control_fps: float) -> MotionLib:
        """A MotionLib over parts of a shard's stored clips (`raw`: a RawShard's flat `arrays`,
        `start`, `frames`, `fps`): part i is control-rate frames first[i] .. first[i] + count[i] - 1
        of clip clips[i] (C,) (a clip may be in several parts). Query it by part: `state(i, t)`
        for t (s) within part i gives what a MotionLib over the whole clip gives there, bit for bit
        (each resampled frame and each velocity is the same arithmetic on the same frames). Each
        part is resampled two frames wider each side where the clip has them: a query reads the
        frame after it (interpolation) and velocities read the frames either side."""
        self = cls.__new__(cls)
        self.control_fps, self.device, self.fk = float(control_fps), torch.device("cpu"), None
        clips = np.asarray(clips, dtype=np.int64)
        self.store_index = torch.as_tensor(raw.store_index[clips])
        self.names, self.joint_names = [raw.names[c] for c in clips], []
        keys, length, lo, n, args = _segment_plan(raw, clips, first, count, self.control_fps)
        res = lib_core.run(lib_core.resample_core, *args)
        out = dict(zip((*keys, *_VEL_KEYS), res, strict=True))
        self._setup(n, out, clip_frames=length, first=lo)
        return self

    def _setup(self, out_frames: np.ndarray, frames: dict, *, clip_frames=None, first=None) -> None:
        """out_frames (C,): the frames held of each clip, back to back in `frames`, from frame
        first (C,) (default 0) of clips of clip_frames (default out_frames) frames."""
        self.clip_frames = torch.as_tensor(
            out_frames if clip_frames is None else clip_frames, device=self.device
        )
        start = np.concatenate(([0], np.cumsum(out_frames)[:-1]))
        self.clip_start = torch.as_tensor(start if first is None else start - first, device=self.device)
        self.clip_length_s = (self.clip_frames - 1).to(torch.float32) / self.control_fps
        self._frames = {k: v.to(device=self.device, dtype=torch.float32) for k, v in frames.items()}
        self._keys, self._values = list(self._frames), list(self._frames.values())
        self._quat = self._keys.index("root_quat_w")

    @property
    def num_clips(self) -> int:
        return len(self.names)

    @property
    def num_frames(self) -> int:
        """Total control-rate frames held (all clips)."""
        return int(self._frames["joint_pos"].shape[0])

    @property
    def has_smpl(self) -> bool:
        return "smpl_joints" in self._frames

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._frames.values())

    def state(self, clip_ids: torch.Tensor, times: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reference state at (clip_ids (N,) long, times (N,) seconds), interpolated between frames.

        Returns root_pos_w (N,3), root_quat_w (N,4) wxyz, joint_pos (N,J), joint_vel (N,J),
        root_lin_vel_w (N,3), root_ang_vel_w (N,3) world frame, and smpl_joints (N,24,3) when
        every clip has them.
        """
        res = lib_core.run(
            lib_core.state_core,
            self._values,
            self._quat,
            self.clip_frames,
            self.clip_start,
            clip_ids.to(self.device, torch.long),
            times.to(self.device, torch.float32),
            self.control_fps,
        )
        return dict(zip(self._keys, res))

    def body_state(self, clip_ids: torch.Tensor, times: torch.Tensor) -> dict[str, torch.Tensor]:
        """`state` plus body_pos_w (N,B,3) and body_quat_w (N,B,4) from the FK object."""
        if self.fk is None:
            raise RuntimeError("MotionLib.body_state needs an FK object: MotionLib(..., fk=...)")
        out = self.state(clip_ids, times)
        out["body_pos_w"], out["body_quat_w"] = self.fk.forward(
            out["root_pos_w"], out["root_quat_w"], out["joint_pos"]
        )
        return out
