"""The reference computed on demand: a runner holds its shard's raw clips, plus a bounded cache.

`ReferenceTable` precomputes every control-rate frame of the shard (~1.9 kB per frame for the G1:
~200 GB at SONIC's 100M frames). `CachedReference` keeps only the shard's stored arrays at their
native rate (root pose, joints, SMPL joints: float32, one flat array each, what the store holds)
and computes a clip's reference rows when an env starts following it: `ensure(clips)` builds the
missing clips with the same code as the full table (`MotionLib.from_clips` + `ReferenceTable`), so
every row is bit-for-bit what the full table holds, and writes them into an arena of
`cache_frames` rows. Clips no env follows stay cached until room is needed (least recently
ensured go first, down to half the arena, so compactions are rare); the arena grows past
`cache_frames` only when the clips in use need it, to twice what they need (N envs x clip length
x ~1.9 kB: the design's limit for many envs on long clips, where a per-env window would be due).

It has the full table's interface (`data`, `clip_start`, `clip_frames`, `store_index`, `fps`,
`body_names`, `num_clips`, `nbytes`): `clip_start[c]` is clip c's first row in the arena, valid
while c is resident (MotionCommand calls `ensure` with every env's clip at each resample, so the
rows an env reads never move or vanish under it; a compaction only happens inside `ensure`).
The step's gathers are unchanged; the cost moves to resets of envs onto clips not cached.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections import OrderedDict

import numpy as np
import pyarrow as pa
import torch

from sonic_ray.envs.reference import ReferenceTable
from sonic_ray.motion.frames import control_rate_frames
from sonic_ray.motion.motion_lib import MotionLib
from sonic_ray.motion.sharded import is_sharded, read_index, read_manifest
from sonic_ray.motion.store import MotionClip, iter_store, shard_indices, store_info

_RAW_KEYS = ("root_pos", "root_quat", "joint_pos", "smpl_joints")


class RawShard:
    """A shard's clips as stored: flat float32 arrays (sum of native frames, ...) plus offsets."""

    def __init__(self, store_path, shard=None, *, load_smpl: bool = True):
        if is_sharded(store_path):  # three columns of the clip index: no per-clip dicts
            joints = read_manifest(store_path)["joint_names"]
            names, frames, fps = read_index(store_path, ("name", "frames", "fps")).columns
        else:
            info = store_info(store_path)
            joints, c = info["joint_names"], info["clips"]
            names = pa.array([x["name"] for x in c], pa.string())
            frames, fps = [x["frames"] for x in c], [x["fps"] for x in c]
        idx = shard_indices(len(names), shard)
        if not idx:
            raise ValueError(f"{store_path}: shard {shard} holds no clips")
        self.store_index = np.asarray(idx, dtype=np.int64)
        self.names = names.take(idx).to_pylist()
        self.fps = np.asarray(fps, dtype=np.float64)[idx]
        self.frames = np.asarray(frames, dtype=np.int64)[idx]
        self.start = np.concatenate(([0], np.cumsum(self.frames)[:-1]))
        total, j = int(self.frames.sum()), len(joints)
        shapes = {"root_pos": (3,), "root_quat": (4,), "joint_pos": (j,), "smpl_joints": (24, 3)}
        self.arrays = {
            k: np.empty((total, *shapes[k]), np.float32) for k in _RAW_KEYS if load_smpl or k[0] != "s"
        }
        has_smpl = True
        for i, clip in enumerate(iter_store(store_path, shard=shard, smpl=load_smpl)):
            rows = slice(self.start[i], self.start[i] + self.frames[i])
            for k, a in self.arrays.items():
                v = getattr(clip, k)
                if v is None:
                    has_smpl = False
                elif has_smpl or k != "smpl_joints":
                    a[rows] = v
        if not has_smpl:
            self.arrays.pop("smpl_joints", None)
        pa.default_memory_pool().release_unused()  # arrow's allocator keeps the freed read buffers
        with contextlib.suppress(OSError, AttributeError):  # and glibc its heap (not on every libc)
            ctypes.CDLL("libc.so.6").malloc_trim(0)

    def clip(self, i: int) -> MotionClip:
        rows = slice(self.start[i], self.start[i] + self.frames[i])
        a = self.arrays
        return MotionClip(
            self.names[i],
            "",
            float(self.fps[i]),
            a["root_pos"][rows],
            a["root_quat"][rows],
            a["joint_pos"][rows],
            a["smpl_joints"][rows] if "smpl_joints" in a else None,
        )

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


class OnDemandReference:
    """What the on-demand references share of ReferenceTable's interface: `clip_frames` (C,) of the
    shard at the control rate and `data`, the rows held now."""

    clip_frames: torch.Tensor
    data: dict[str, torch.Tensor]

    @property
    def num_clips(self) -> int:
        return int(self.clip_frames.shape[0])

    @property
    def num_frames(self) -> int:
        """Control-rate frames of the shard (what the full table would hold)."""
        return int(self.clip_frames.sum())

    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.data.values())


class CachedReference(OnDemandReference):
    """ReferenceTable's interface over a RawShard, clips computed by `ensure` into a bounded arena."""

    def __init__(
        self,
        raw: RawShard,
        fk,
        *,
        control_fps: float,
        anchor_body: str,
        vr_points,
        smpl_points,
        device="cpu",
        cache_frames: int = 16384,
    ):
        self.raw, self.fk, self.device = raw, fk, torch.device(device)
        self.fps = float(control_fps)
        self._table_kw = dict(
            anchor_body=anchor_body, vr_points=vr_points, smpl_points=smpl_points, device=self.device
        )
        frames = control_rate_frames(raw.frames, raw.fps, self.fps)
        self.clip_frames = torch.as_tensor(frames, device=self.device)
        self.store_index = torch.as_tensor(raw.store_index)
        self.clip_start = torch.full((len(frames),), -1, dtype=torch.long, device=self.device)
        self.body_names = tuple(fk.body_names)
        self.cache_frames = int(cache_frames)
        self._resident: OrderedDict[int, int] = OrderedDict()  # clip -> frames, least recent first
        self._top = 0
        self.data: dict[str, torch.Tensor] = {}
        self.ensure(torch.zeros(1, dtype=torch.long))  # the arena's keys and row shapes

    # whole clips, as a full table: the arena row of frame 0 of each env's clip (resident: MotionCommand
    # ensures them before it asks)
    row_base = ReferenceTable.row_base

    def ensure(self, clips: torch.Tensor) -> None:
        """Make every clip in `clips` (any shape, long) resident; others may be evicted."""
        need = torch.unique(clips).tolist()
        for c in need:
            if c in self._resident:
                self._resident.move_to_end(c)
        missing = [c for c in need if c not in self._resident]
        if not missing:
            return
        lengths = self.clip_frames.cpu().numpy()
        req = int(lengths[missing].sum())
        if self._top + req > self._capacity():
            self._make_room(set(need), req, lengths)
        lib = MotionLib.from_clips(
            [self.raw.clip(c) for c in missing],
            control_fps=self.fps,
            store_index=self.store_index[missing],
            device=self.device,
        )
        table = ReferenceTable(lib, self.fk, **self._table_kw)
        if not self.data:
            self.data = {
                k: torch.empty((max(self.cache_frames, req), *v.shape[1:]), dtype=v.dtype, device=self.device)
                for k, v in table.data.items()
            }
        for k, v in table.data.items():
            self.data[k][self._top : self._top + req] = v
        for c, s in zip(missing, table.clip_start.tolist(), strict=True):
            self.clip_start[c] = self._top + s
            self._resident[c] = int(lengths[c])
        self._top += req

    def _capacity(self) -> int:
        return int(self.data["joint_pos"].shape[0]) if self.data else 0

    def _make_room(self, keep: set[int], req: int, lengths: np.ndarray) -> None:
        """Evict least recently ensured clips not in `keep` until `req` more rows fill at most half
        the arena, grow the arena to twice the rows in use when the kept clips need it, and compact
        the survivors to the front: each compaction frees half the arena, so its copy is paid once
        per (arena / 2) rows computed, not at every reset."""
        capacity = max(self._capacity(), self.cache_frames)
        live = sum(self._resident.values())
        for c in list(self._resident):
            if live + req <= capacity // 2:
                break
            if c not in keep:
                live -= self._resident.pop(c)
                self.clip_start[c] = -1
        if live + req > capacity // 2:
            capacity = 2 * (live + req)
        order = list(self._resident)
        rows = (
            torch.cat(
                [
                    torch.arange(int(self.clip_start[c]), int(self.clip_start[c]) + n)
                    for c, n in self._resident.items()
                ]
            )
            if order
            else torch.zeros(0, dtype=torch.long)
        )
        rows = rows.to(self.device)
        for k, v in self.data.items():
            kept = v.index_select(0, rows)
            if capacity != v.shape[0]:
                v = self.data[k] = torch.empty((capacity, *v.shape[1:]), dtype=v.dtype, device=self.device)
            v[:live] = kept
        top = 0
        for c in order:
            self.clip_start[c] = top
            top += self._resident[c]
        self._top = top
