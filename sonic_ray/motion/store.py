"""The canonical motion store: one Parquet file, one row group per clip.

Layout (schema version 1)
- One row per clip, one row group per clip, so a reader fetches exactly the clips it wants
  (shard k of n reads row groups k::n) and never holds the whole store in memory.
- Per-frame arrays are flat `list<float32>` columns (row-major, e.g. root_pos is T*3 values):
  flat lists turn into numpy with one reshape, no per-frame objects.
- The file's key-value metadata holds the store header (schema version, joint names) and a
  compact clip index (name, source, fps, frames, warnings, fk error), so `store_info` and shard
  planning read only the footer. At 10,000 clips the footer is a few MB and opens in ~0.1 s;
  grouping many clips per row group would shrink it but make shard reads touch every group.

Writes are atomic: the new file is built next to the target (`.<store name>.tmp-<pid>-*`) and
`os.replace`d over it, so a failed import leaves the previous store as it was. Appending rewrites
the file (Parquet is immutable) by streaming the old row groups into the new one; a clip name
already in the store is an error (`StoreError`), because silently suffixing would duplicate data
on re-import.

Writers take an exclusive `flock` on `.<store name>.lock` beside the store (`store_lock`) and read
the store they extend under it, so concurrent imports into one store serialise and both land. A
writer killed mid-write leaves its temp file; the next writer, holding the lock, knows no other
writer is active and removes it. Pages carry CRC checksums, verified on every read, so a store
corrupted on disk fails loudly (`StoreError` naming the file) instead of being read or copied
forward by the next append.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from sonic_ray.motion.store_format import (  # noqa: F401  (re-exported: the names callers import from here)
    _ARRAY_COLUMNS,
    _WRITE_OPTIONS,
    MotionClip,
    StoreError,
    _clip_table,
    _schema,
    _table_to_clips,
    shard_indices,
    store_lock,
)

SCHEMA_VERSION = 1
_META_KEY = b"sonic_ray.motion"


def _index_entry(clip: MotionClip) -> dict:
    return {
        "name": clip.name,
        "source": clip.source,
        "format": clip.format,
        "fps": float(clip.fps),
        "frames": clip.num_frames,
        "warnings": list(clip.warnings),
        "fk_max_err_m": clip.fk_max_err_m,
    }


def _tmp_prefix(path: str) -> str:
    return f".{os.path.basename(path)}.tmp-"


def _remove_stale_temps(path: str) -> None:
    """Temp files of writers that died mid-write (call with the store's lock held: none is alive)."""
    directory, prefix = os.path.dirname(os.path.abspath(path)), _tmp_prefix(path)
    for entry in os.scandir(directory):
        if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)


def _open(path) -> pq.ParquetFile:
    """The store's Parquet file with page checksums verified on read; StoreError if it is none."""
    if not os.path.exists(path):
        raise StoreError(f"{path}: no such motion store")
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as e:  # a folder, a non-Parquet file, a truncated store
        raise StoreError(f"{path}: not a readable Parquet motion store ({type(e).__name__}: {e})") from None


@contextlib.contextmanager
def _reading(path) -> Iterator[None]:
    """Turn a failed page read (checksum mismatch, truncation) into a StoreError naming the file."""
    try:
        yield
    except (OSError, pa.ArrowException) as e:
        msg = f"{path}: store data unreadable, corrupt on disk? ({type(e).__name__}: {e})"
        raise StoreError(msg) from None


def _read_header(pf: pq.ParquetFile, path) -> dict:
    meta = pf.metadata.metadata or {}
    if _META_KEY not in meta:
        raise StoreError(f"{path}: not a sonic-ray motion store (no {_META_KEY.decode()} metadata)")
    try:
        header = json.loads(meta[_META_KEY])
    except ValueError as e:
        raise StoreError(f"{path}: store header unreadable ({e})") from None
    if not isinstance(header, dict):
        raise StoreError(f"{path}: store header is not a JSON object")
    if header.get("schema_version") != SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema_version {header.get('schema_version')} unsupported (expected {SCHEMA_VERSION})"
        )
    return header


def store_names(path) -> set[str]:
    """Clip names in the store at `path` (empty if there is none yet)."""
    if not os.path.exists(path):
        return set()
    if os.path.isdir(path):
        from sonic_ray.motion.sharded import read_index

        return set(read_index(path, ["name"]).column(0).to_pylist())
    return {c["name"] for c in _read_header(_open(path), path)["clips"]}


def write_store(path, clips: Iterable[MotionClip], *, joint_names, append: bool = False) -> int:
    """Write clips to the store at `path` atomically; returns the number of clips now stored.

    `clips` is consumed lazily (one clip in memory at a time), so a generator that loads and
    validates files can stream a large import. append=False replaces any existing store;
    append=True keeps its clips (joint names must match) and adds the new ones after them. A
    duplicate name raises StoreError and leaves the existing store untouched.
    """
    path = os.fspath(path)
    joint_names = list(joint_names)
    if os.path.isdir(path):
        raise StoreError(f"{path}: is a folder; a motion store is one .parquet file")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with store_lock(path):
        _remove_stale_temps(path)
        return _write_locked(path, clips, joint_names, append)


def _write_locked(path: str, clips: Iterable[MotionClip], joint_names: list[str], append: bool) -> int:
    old = None
    index: list[dict] = []
    if append and os.path.exists(path):
        old = _open(path)
        old_header = _read_header(old, path)
        if old_header["joint_names"] != joint_names:
            raise StoreError(f"{path}: store joint_names differ from the clips' joint_names")
        index = list(old_header["clips"])
    names = {e["name"] for e in index}
    schema = _schema()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f"{_tmp_prefix(path)}{os.getpid()}-", dir=directory)
    os.close(fd)
    try:
        with pq.ParquetWriter(tmp, schema, **_WRITE_OPTIONS) as writer:
            if old is not None:
                for g in range(old.num_row_groups):
                    with _reading(path):
                        group = old.read_row_group(g)
                    writer.write_table(group.replace_schema_metadata(None))
            for clip in clips:
                if clip.name in names:
                    raise StoreError(
                        f"{path}: clip name {clip.name!r} already in the store (names must be unique)"
                    )
                names.add(clip.name)
                writer.write_table(_clip_table(clip, schema, len(joint_names)))
                index.append(_index_entry(clip))
            header = {"schema_version": SCHEMA_VERSION, "joint_names": joint_names, "clips": index}
            writer.add_key_value_metadata({_META_KEY: json.dumps(header).encode()})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return len(index)


def store_size(path) -> tuple[list[str], int]:
    """(joint names, number of clips): for a sharded store from its manifest alone, without
    `store_info`'s per-clip dicts (0.3 s at 100k clips, on the driver's start-up path)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        from sonic_ray.motion.sharded import read_manifest

        m = read_manifest(path)
        return m["joint_names"], m["totals"]["num_clips"]
    info = store_info(path)
    return info["joint_names"], info["num_clips"]


def clip_names(path, indices) -> list[str]:
    """Names of the clips at store indices `indices` (a sharded store: one column of its index)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        from sonic_ray.motion.sharded import read_index

        return read_index(path, ["name"]).column(0).take(list(indices)).to_pylist()
    clips = store_info(path)["clips"]
    return [clips[i]["name"] for i in indices]


def store_warnings(path, limit: int | None = None) -> dict[str, list[str]]:
    """{clip name: validation warnings} of the first `limit` (default all) clips that have any (a
    sharded store: the index's warnings column, names read only when some clip has warnings)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        from sonic_ray.motion.sharded import clip_warnings

        return clip_warnings(path, limit)
    warned = [(c["name"], c["warnings"]) for c in store_info(path)["clips"] if c["warnings"]]
    return dict(warned[:limit])


def store_info(path, *, clips: bool = True) -> dict:
    """Footer-only summary: joint names, totals and per-source counts, and with `clips` the per-clip
    index as dicts (a sharded store, i.e. a folder: its manifest, and its clip index for `clips`;
    `sharded.sharded_info`)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        from sonic_ray.motion.sharded import sharded_info

        return sharded_info(path, clips=clips)
    pf = _open(path)
    header = _read_header(pf, path)
    index = header["clips"]
    by_format: dict[str, int] = {}
    for c in index:
        by_format[c["format"]] = by_format.get(c["format"], 0) + 1
    return {
        "path": path,
        "schema_version": header["schema_version"],
        "joint_names": header["joint_names"],
        "num_clips": len(index),
        "total_frames": sum(c["frames"] for c in index),
        "total_duration_s": sum((c["frames"] - 1) / c["fps"] for c in index),
        "by_format": by_format,
        "num_with_warnings": sum(1 for c in index if c["warnings"]),
    } | ({"clips": index} if clips else {})


def iter_store(
    path, *, shard: tuple[int, int] | None = None, smpl: bool = True, batch: int = 256
) -> Iterator[MotionClip]:
    """Yield the clips of `shard` in store order, reading `batch` row groups per call (lazy:
    at most one batch of clips is decoded at a time; per-call overhead dominates single reads).
    A folder is a sharded store (`sharded.iter_sharded`)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        from sonic_ray.motion.sharded import iter_sharded

        yield from iter_sharded(path, shard=shard, smpl=smpl)
        return
    pf = _open(path)
    header = _read_header(pf, path)
    j = len(header["joint_names"])
    columns = [c for c in pf.schema_arrow.names if smpl or c != "smpl_joints"]
    wanted = shard_indices(pf.num_row_groups, shard)
    for b in range(0, len(wanted), batch):
        with _reading(path):
            table = pf.read_row_groups(wanted[b : b + batch], columns=columns)
        yield from _table_to_clips(table, j)


def read_store(path, *, shard: tuple[int, int] | None = None) -> tuple[list[MotionClip], dict]:
    """All clips of `shard` (k, n) -> clips k::n, plus the store header (joint_names, ...)."""
    path = os.fspath(path)
    header = store_info(path, clips=False) if os.path.isdir(path) else _read_header(_open(path), path)
    return list(iter_store(path, shard=shard)), {
        "schema_version": header["schema_version"],
        "joint_names": header["joint_names"],
    }


def migrate(src, dst) -> dict:
    """Copy the store `src` (one file, or a sharded folder) into the sharded store `dst`, clip by
    clip (`sharded.write_sharded`: appends, skips clips already there)."""
    from sonic_ray.motion.sharded import write_sharded

    return write_sharded(dst, iter_store(src), joint_names=store_size(src)[0], append=True)
