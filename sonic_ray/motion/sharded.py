"""The sharded motion store: a folder of Parquet shards plus one manifest, for corpora of 100k+ clips.

Layout (schema version 2)
- `manifest.json`: the store header (format, schema version, joint names), the shard list (file,
  clips, bytes, sha256 of the file) and a columnar clip index (name, source, format, fps, frames,
  content hash, shard, row, fk error) plus warnings by clip name and totals. `motions info`, shard
  planning and the driver read only this file; clip order in the index is the store's order
  (what `shard_indices` numbers).
- `shard-*.parquet`: at most `MAX_SHARD_CLIPS` clips each, the one-file store's row schema
  (`store_format._schema`), row groups of `ROW_GROUP_CLIPS` clips (a row group per clip costs ~1 kB of
  footer per clip, +5-10 % for short clips). Shards are written once and never rewritten.

Writes: new clips go to new shard files (unique names), then the manifest is written to a temp
file and `os.replace`d over the old one, under the store lock (`store_format.store_lock` on the folder).
A writer that dies before the rename leaves the previous manifest valid and its new shards
unreferenced; the next writer, holding the lock, deletes unreferenced shard files. Appends never
touch old shards. A clip whose content hash (arrays + fps) is already stored is skipped as a
duplicate; a new clip whose name is taken by other content is rejected, as in the one-file store.

Reads open shards memory-mapped with page checksums verified; a shard that cannot be read raises a
`StoreError` naming that file, and `verify_store` checks every shard's size and hash one by one,
so a corrupt shard is reported by name while the others stay readable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sonic_ray.motion.store_format import (
    _WRITE_OPTIONS,
    MotionClip,
    StoreError,
    _clip_table,
    _schema,
    _table_to_clips,
    shard_indices,
    store_lock,
)

FORMAT = "sonic_ray.sharded_motion_store"
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
MAX_SHARD_CLIPS = 4096
ROW_GROUP_CLIPS = 32
READ_GROUPS = 4  # row groups per read (single-threaded: Arrow's reader threads keep freed buffers)
_INDEX_KEYS = ("name", "source", "format", "fps", "frames", "hash", "shard", "row", "fk_max_err_m")
_SHARD_OPTIONS = {**_WRITE_OPTIONS, "write_statistics": False}
_cache: dict[str, tuple[tuple, dict]] = {}  # manifest path -> ((mtime_ns, size), parsed manifest)


def is_sharded(path) -> bool:
    """A sharded store is a folder (with a manifest once anything was written)."""
    return os.path.isdir(os.fspath(path))


def clip_hash(clip: MotionClip) -> str:
    """Content hash of a clip's motion (fps and float32 arrays): equal motions under any name."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.float64(clip.fps).tobytes())
    for key in ("root_pos", "root_quat", "joint_pos", "smpl_joints"):
        a = getattr(clip, key)
        h.update(key.encode())
        if a is not None:
            a = np.ascontiguousarray(a, dtype=np.float32)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _empty_manifest(joint_names: list[str]) -> dict:
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "joint_names": list(joint_names),
        "shards": [],
        "clips": {k: [] for k in _INDEX_KEYS},
        "warnings": {},
    }


def read_manifest(path) -> dict:
    """The parsed manifest of the store folder `path` (cached while the file is unchanged)."""
    path = os.fspath(path)
    mpath = os.path.join(path, MANIFEST)
    try:
        st = os.stat(mpath)
    except FileNotFoundError:
        raise StoreError(
            f"{mpath}: no manifest (not a sharded motion store, or nothing imported yet)"
        ) from None
    key = (st.st_mtime_ns, st.st_size)
    hit = _cache.get(mpath)
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        with open(mpath, "rb") as f:
            m = json.loads(f.read())
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        if m.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {m.get('schema_version')} unsupported (expected {SCHEMA_VERSION})"
            )
        n = len(m["clips"]["name"])
        if any(len(m["clips"][k]) != n for k in _INDEX_KEYS):
            raise ValueError("clip index columns differ in length")
    except (ValueError, KeyError, TypeError) as e:
        raise StoreError(f"{mpath}: manifest unreadable ({type(e).__name__}: {e})") from None
    _cache[mpath] = (key, m)
    return m


def forget(path) -> None:
    """Drop the cached manifest of `path` (at 100k clips its parsed index takes ~90 MB): for a
    runner that has read what it needs; a later read parses the file again."""
    _cache.pop(os.path.join(os.fspath(path), MANIFEST), None)


def sharded_info(path) -> dict:
    """`store.store_info` for a sharded store, from the manifest only (built once per manifest
    version: the driver asks several times while it starts; callers must not modify it)."""
    m = read_manifest(path)
    if "_info" in m:
        return m["_info"]
    c = m["clips"]
    by_format: dict[str, int] = {}
    for f in c["format"]:
        by_format[f] = by_format.get(f, 0) + 1
    frames = np.asarray(c["frames"], dtype=np.int64)
    fps = np.asarray(c["fps"], dtype=np.float64)
    warnings = m["warnings"]
    clips = [
        {
            "name": name,
            "source": c["source"][i],
            "format": c["format"][i],
            "fps": c["fps"][i],
            "frames": c["frames"][i],
            "warnings": warnings.get(name, []),
            "fk_max_err_m": c["fk_max_err_m"][i],
        }
        for i, name in enumerate(c["name"])
    ]
    m["_info"] = {
        "path": os.fspath(path),
        "schema_version": m["schema_version"],
        "joint_names": m["joint_names"],
        "num_clips": len(c["name"]),
        "total_frames": int(frames.sum()),
        "total_duration_s": float(((frames - 1) / fps).sum()) if len(frames) else 0.0,
        "by_format": by_format,
        "num_with_warnings": len(warnings),
        "num_shards": len(m["shards"]),
        "store_bytes": sum(s["bytes"] for s in m["shards"]),
        "clips": clips,
    }
    return m["_info"]


def clip_frames_fps(path) -> tuple[np.ndarray, np.ndarray]:
    """(frames (C,), fps (C,)) of every clip in store order, straight from the manifest's columns."""
    c = read_manifest(path)["clips"]
    return np.asarray(c["frames"], dtype=np.int64), np.asarray(c["fps"], dtype=np.float64)


def _shard_file(path: str, name: str) -> str:
    if os.sep in name or name.startswith("."):
        raise StoreError(f"{path}/{MANIFEST}: shard entry {name!r} is not a plain file name")
    return os.path.join(path, name)


def _open_shard(path: str, entry: dict) -> pq.ParquetFile:
    file = _shard_file(path, entry["file"])
    try:
        size = os.path.getsize(file)
        if size != entry["bytes"]:
            raise OSError(f"size {size} bytes, manifest says {entry['bytes']}")
        return pq.ParquetFile(pa.memory_map(file), page_checksum_verification=True)
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"{file}: shard unreadable ({type(e).__name__}: {e})") from None


def iter_sharded(
    path, *, shard: tuple[int, int] | None = None, smpl: bool = True, indices: Iterable[int] | None = None
) -> Iterator[MotionClip]:
    """Clips of `shard` (k, n) (or of the store indices `indices`) in store order, one shard file
    and one row group at a time. A shard file that cannot be read raises StoreError naming it."""
    path = os.fspath(path)
    m = read_manifest(path)
    c = m["clips"]
    wanted = shard_indices(len(c["name"]), shard) if indices is None else sorted(indices)
    j = len(m["joint_names"])
    by_file: dict[int, list[tuple[int, int]]] = {}
    for i in wanted:
        by_file.setdefault(c["shard"][i], []).append((i, c["row"][i]))
    for s in sorted(by_file, key=lambda s: by_file[s][0][0]):
        entry = m["shards"][s]
        pf = _open_shard(path, entry)
        columns = [k for k in pf.schema_arrow.names if smpl or k != "smpl_joints"]
        rows = by_file[s]
        by_group: dict[int, list[int]] = {}
        for _, r in rows:
            by_group.setdefault(r // ROW_GROUP_CLIPS, []).append(r % ROW_GROUP_CLIPS)
        groups = sorted(by_group)
        for b in range(0, len(groups), READ_GROUPS):  # a few row groups per read: small transient buffers
            chunk = groups[b : b + READ_GROUPS]
            try:
                table = pf.read_row_groups(chunk, columns=columns, use_threads=False)
            except (OSError, pa.ArrowException) as e:
                raise StoreError(
                    f"{_shard_file(path, entry['file'])}: shard data unreadable, corrupt on disk? "
                    f"({type(e).__name__}: {e})"
                ) from None
            take = [k * ROW_GROUP_CLIPS + i for k, g in enumerate(chunk) for i in by_group[g]]  # groups full
            yield from _table_to_clips(table.take(take), j)  # but a file's last, which comes last


def verify_store(path) -> list[str]:
    """Problems found, one line per bad shard naming its file (size or sha256 mismatch, unreadable)."""
    path = os.fspath(path)
    problems = []
    for entry in read_manifest(path)["shards"]:
        file = _shard_file(path, entry["file"])
        try:
            if os.path.getsize(file) != entry["bytes"]:
                problems.append(f"{file}: {os.path.getsize(file)} bytes, manifest says {entry['bytes']}")
            elif _sha256(file) != entry["sha256"]:
                problems.append(f"{file}: content hash differs from the manifest's (corrupt on disk?)")
        except OSError as e:
            problems.append(f"{file}: unreadable ({type(e).__name__}: {e})")
    return problems


def _sha256(file: str) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ShardWriter:
    """Writes clips into new shard files of at most `max_clips` clips in the store folder `path`.

    Used by the sharded writer and by each import worker; `finish()` returns the shard entries and
    per-clip index rows (row = position in its shard) for the manifest, which only the writer that
    holds the store lock commits.
    """

    def __init__(self, path, joint_names, *, max_clips: int = MAX_SHARD_CLIPS):
        self.path, self.num_joints, self.max_clips = os.fspath(path), len(joint_names), max_clips
        self.schema = _schema()
        self.shards: list[dict] = []
        self.clips: list[dict] = []
        self._writer = None
        self._file = None
        self._rows = 0
        self._pending: list[pa.Table] = []

    def add(self, clip: MotionClip, *, content_hash: str | None = None) -> None:
        table = _clip_table(clip, self.schema, self.num_joints)
        if self._writer is None:
            name = f"shard-{uuid.uuid4().hex[:16]}.parquet"
            self._file = os.path.join(self.path, name)
            self._writer = pq.ParquetWriter(self._file, self.schema, **_SHARD_OPTIONS)
            self._rows = 0
        self._pending.append(table)
        self.clips.append(
            {
                "name": clip.name,
                "source": clip.source,
                "format": clip.format,
                "fps": float(clip.fps),
                "frames": clip.num_frames,
                "hash": content_hash or clip_hash(clip),
                "shard": os.path.basename(self._file),
                "row": self._rows,
                "fk_max_err_m": clip.fk_max_err_m,
                "warnings": list(clip.warnings),
            }
        )
        self._rows += 1
        if len(self._pending) == ROW_GROUP_CLIPS:
            self._flush()
        if self._rows == self.max_clips:
            self._close()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=ROW_GROUP_CLIPS)
            self._pending = []

    def _close(self) -> None:
        if self._writer is None:
            return
        self._flush()
        self._writer.close()
        self._writer = None
        with open(self._file, "rb") as f:
            os.fsync(f.fileno())
        self.shards.append(
            {
                "file": os.path.basename(self._file),
                "clips": self._rows,
                "bytes": os.path.getsize(self._file),
                "sha256": _sha256(self._file),
            }
        )

    def finish(self) -> tuple[list[dict], list[dict]]:
        self._close()
        return self.shards, self.clips

    def abort(self) -> None:
        """Close and delete what this writer wrote (shards not yet in any manifest)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
            self.shards.append({"file": os.path.basename(self._file)})
        for s in self.shards:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.path, s["file"]))


def load_for_append(path, joint_names) -> dict:
    """The manifest to extend (a fresh one when the folder has none); joint names must match."""
    path = os.fspath(path)
    if not os.path.exists(os.path.join(path, MANIFEST)):
        return _empty_manifest(joint_names)
    m = read_manifest(path)
    if m["joint_names"] != list(joint_names):
        raise StoreError(f"{path}: store joint_names differ from the clips' joint_names")
    return json.loads(json.dumps({k: v for k, v in m.items() if k != "_info"}))  # a private copy


def remove_unreferenced(path, manifest: dict) -> None:
    """Delete shard files no manifest references: left by writers that died (hold the store lock)."""
    live = {s["file"] for s in manifest["shards"]}
    for entry in os.scandir(path):
        n = entry.name
        if (
            (n.startswith("shard-") and n.endswith(".parquet")) or n.startswith(f".{MANIFEST}.tmp")
        ) and n not in live:
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)


def commit(path, manifest: dict, shards: list[dict], clips: list[dict]) -> dict:
    """Add written shards and their clip rows to `manifest` and replace the manifest file atomically.

    `clips` rows name their shard file; rows of clips that must not be listed (duplicates found
    after the write) are simply left out, their bytes stay unreferenced in the shard.
    """
    path = os.fspath(path)
    base = len(manifest["shards"])
    pos = {s["file"]: base + k for k, s in enumerate(shards)}
    manifest["shards"].extend(shards)
    col = manifest["clips"]
    for c in clips:
        for k in _INDEX_KEYS:
            col[k].append(pos[c["shard"]] if k == "shard" else c[k])
        if c["warnings"]:
            manifest["warnings"][c["name"]] = c["warnings"]
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.tmp-", dir=path)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; the manifest is read like the shards
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(path, MANIFEST))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return manifest


def write_sharded(
    path, clips: Iterable[MotionClip], *, joint_names, append: bool = True, max_clips: int = MAX_SHARD_CLIPS
) -> dict:
    """Write clips into the sharded store at `path` (a folder, created if missing) serially.

    Returns {"added": [names], "duplicates": [names], "num_clips": clips now stored}. A clip whose
    content is already stored (or earlier in `clips`) is a duplicate and skipped; a new clip with a
    taken name raises StoreError and nothing of this call is committed. append=False starts an
    empty manifest (old shards are deleted once the new manifest is in place).
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        raise StoreError(f"{path}: is a file; a sharded motion store is a folder (see `motions migrate`)")
    os.makedirs(path, exist_ok=True)
    with store_lock(path):
        manifest = load_for_append(path, joint_names) if append else _empty_manifest(joint_names)
        if append:
            remove_unreferenced(path, manifest)
        names = set(manifest["clips"]["name"])
        hashes = set(manifest["clips"]["hash"])
        writer = ShardWriter(path, joint_names, max_clips=max_clips)
        added, dups = [], []
        try:
            for clip in clips:
                h = clip_hash(clip)
                if h in hashes:
                    dups.append(clip.name)
                    continue
                if clip.name in names:
                    raise StoreError(
                        f"{path}: clip name {clip.name!r} already in the store (names must be unique)"
                    )
                names.add(clip.name)
                hashes.add(h)
                writer.add(clip, content_hash=h)
                added.append(clip.name)
            shards, rows = writer.finish()
            manifest = commit(path, manifest, shards, rows)
        except BaseException:
            writer.abort()
            raise
        remove_unreferenced(path, manifest)
    return {"added": added, "duplicates": dups, "num_clips": len(manifest["clips"]["name"])}
