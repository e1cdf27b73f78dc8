"""What both store layouts share: the clip type, the row schema and its conversions, the write lock.

`store.py` (one file) and `sharded.py` (a folder of shards + manifest) build on this module; neither
imports the other here, so `store.py` can open a sharded store without an import circle.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

_ARRAY_COLUMNS = ("root_pos", "root_quat", "joint_pos", "smpl_joints")
# One value per row group makes dictionaries pure overhead (+40 % on float columns); byte-stream
# split + lz4 keeps float arrays near their raw size and reads as fast as uncompressed.
_WRITE_OPTIONS = dict(
    use_dictionary=False,
    compression="lz4",
    use_byte_stream_split=[f"{c}.list.element" for c in _ARRAY_COLUMNS],
    write_page_checksum=True,
)
_HELD = threading.local()  # lock files this thread holds -> depth (store_lock is re-entrant)


class StoreError(ValueError):
    """A store that cannot be read or written as asked (wrong schema, joint names, clash)."""


@dataclass
class MotionClip:
    """One reference motion at its native frame rate.

    root_pos (T, 3) world metres, root_quat (T, 4) wxyz world, joint_pos (T, J) radians in the
    store's joint order, smpl_joints (T, 24, 3) optional. `body_pos_w` (T, B, 3) is what some
    files carry (mjlab NPZ): used for the FK check at import, never stored. `source` is the file
    the clip came from, `format` the importer that read it (e.g. "sonic_pkl").
    """

    name: str
    source: str
    fps: float
    root_pos: np.ndarray
    root_quat: np.ndarray
    joint_pos: np.ndarray
    smpl_joints: np.ndarray | None = None
    format: str = ""
    warnings: list[str] = field(default_factory=list)
    fk_max_err_m: float | None = None
    body_pos_w: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.root_pos.shape[0])

    @property
    def duration_s(self) -> float:
        return (self.num_frames - 1) / float(self.fps)


def _schema() -> pa.Schema:
    f32 = pa.list_(pa.float32())
    return pa.schema(
        [
            ("name", pa.string()),
            ("source", pa.string()),
            ("format", pa.string()),
            ("fps", pa.float64()),
            ("num_frames", pa.int32()),
            ("root_pos", f32),
            ("root_quat", f32),
            ("joint_pos", f32),
            ("smpl_joints", f32),
            ("warnings", pa.list_(pa.string())),
            ("fk_max_err_m", pa.float64()),
        ]
    )


def _clip_table(clip: MotionClip, schema: pa.Schema, num_joints: int) -> pa.Table:
    t = clip.num_frames
    shapes = {"root_pos": (t, 3), "root_quat": (t, 4), "joint_pos": (t, num_joints)}
    cols = {}
    for key, shape in shapes.items():
        arr = np.asarray(getattr(clip, key), dtype=np.float32)
        if arr.shape != shape:
            raise StoreError(f"clip {clip.name!r}: {key} has shape {arr.shape}, expected {shape}")
        cols[key] = [arr.reshape(-1)]
    smpl = clip.smpl_joints
    if smpl is not None:
        smpl = np.asarray(smpl, dtype=np.float32)
        if smpl.shape != (t, 24, 3):
            raise StoreError(f"clip {clip.name!r}: smpl_joints has shape {smpl.shape}, expected {(t, 24, 3)}")
        smpl = smpl.reshape(-1)
    return pa.table(
        {
            "name": [clip.name],
            "source": [clip.source],
            "format": [clip.format],
            "fps": [float(clip.fps)],
            "num_frames": [t],
            **cols,
            "smpl_joints": pa.array([smpl], type=pa.list_(pa.float32())),
            "warnings": [list(clip.warnings)],
            "fk_max_err_m": pa.array([clip.fk_max_err_m], type=pa.float64()),
        },
        schema=schema,
    )


def _lock_path(path: str) -> str:
    d, name = os.path.split(os.path.abspath(path))
    return os.path.join(d, f".{name}.lock")


@contextlib.contextmanager
def store_lock(path) -> Iterator[None]:
    """Hold the exclusive write lock of the store at `path` (blocks while another process holds it).

    Re-entrant within a thread, so `import_motions` can hold it across its read of the clip names
    and the `write_store` that appends. The lock file stays beside the store (empty, harmless).
    """
    lock = _lock_path(os.fspath(path))
    held = _HELD.__dict__.setdefault("depth", {})
    if held.get(lock):
        held[lock] += 1
        try:
            yield
        finally:
            held[lock] -= 1
        return
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held[lock] = 1
        try:
            yield
        finally:
            held.pop(lock, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def shard_indices(num_clips: int, shard: tuple[int, int] | None) -> list[int]:
    """Clip indices of shard (k, n): clips k, k+n, k+2n, ... All clips when shard is None."""
    if shard is None:
        return list(range(num_clips))
    k, n = shard
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard}")
    return list(range(k, num_clips, n))


def _lists(table: pa.Table, key: str) -> list[np.ndarray | None]:
    """Per-row numpy views of a list<float32> column (None for null rows)."""
    col = table.column(key).combine_chunks()
    values = col.values.to_numpy(zero_copy_only=False)
    offsets = col.offsets.to_numpy()
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    return [values[offsets[i] : offsets[i + 1]] if valid[i] else None for i in range(len(col))]


def _table_to_clips(table: pa.Table, num_joints: int) -> list[MotionClip]:
    meta = table.select(
        ["name", "source", "format", "fps", "num_frames", "warnings", "fk_max_err_m"]
    ).to_pylist()
    arrays = {k: _lists(table, k) for k in _ARRAY_COLUMNS if k in table.column_names}
    clips = []
    for i, m in enumerate(meta):
        t = m["num_frames"]
        smpl = arrays["smpl_joints"][i] if "smpl_joints" in arrays else None
        clips.append(
            MotionClip(
                name=m["name"],
                source=m["source"],
                format=m["format"],
                fps=m["fps"],
                root_pos=arrays["root_pos"][i].reshape(t, 3),
                root_quat=arrays["root_quat"][i].reshape(t, 4),
                joint_pos=arrays["joint_pos"][i].reshape(t, num_joints),
                smpl_joints=None if smpl is None else smpl.reshape(t, 24, 3),
                warnings=list(m["warnings"] or []),
                fk_max_err_m=m["fk_max_err_m"],
            )
        )
    return clips
