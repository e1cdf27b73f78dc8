"""The sharded motion store: a folder of Parquet shards, a clip index and one manifest, for 100k+ clips.

Layout (schema version 3)
- `manifest.json`: small, whatever the store's size: the store header (format, schema version,
  joint names, generation), the shard list (file, clips, bytes, sha256 of the file), the clip
  index file's entry (file, clips, bytes, sha256) and the totals `motions info` prints. The driver's
  start-up and shard planning read this file and the index columns they need.
- `clips-<generation>-<random>.parquet`: the clip index (`clip_index`: name, source, format, fps,
  frames, content hash, shard, row, fk error, warnings; one row per clip in store order, the order
  `shard_indices` numbers), read column by column.
- `shard-*.parquet`: at most `MAX_SHARD_CLIPS` clips each, the one-file store's row schema
  (`store_format._schema`), row groups of `ROW_GROUP_CLIPS` clips (a row group per clip costs ~1 kB of
  footer per clip, +5-10 % for short clips). Shards are written once and never rewritten.
Schema version 2 (the per-clip columns inside the manifest's JSON) still reads; the next write, or
`motions upgrade`, rewrites its manifest as version 3 (shards untouched).

Writes: new clips go to new shard files (unique names), then a new index file (all rows, under a
new name), then the manifest is written to a temp file and `os.replace`d over the old one, under
the store lock (`store_format.store_lock` on the folder): the manifest is the commit point. A
writer that dies before the rename leaves the previous manifest and its index valid and its new
files unreferenced; the next writer, holding the lock, deletes unreferenced shard and index files.
A clip whose content hash (arrays + fps) is already stored is skipped as a duplicate; a new clip
whose name is taken by other content is rejected, as in the one-file store.

Reads open shards memory-mapped with page checksums verified; a shard (or the index) that cannot be
read raises a `StoreError` naming that file, and `verify_store` checks every file's size and hash
one by one, so a corrupt shard is reported by name while the others stay readable.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sonic_ray.motion.clip_index import INDEX_PREFIX, INDEX_SCHEMA, rows_table, totals, write_index
from sonic_ray.motion.manifest import (  # noqa: F401  (re-exported: what readers import from here)
    MANIFEST,
    SCHEMA_VERSION,
    clip_frames_fps,
    clip_warnings,
    empty_index,
    empty_manifest,
    forget,
    parse_manifest,
    plain_name,
    read_index,
    read_manifest,
    read_version,
    sharded_info,
)
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
from sonic_ray.utils.io import file_sha256

MAX_SHARD_CLIPS = 4096
ROW_GROUP_CLIPS = 32
READ_GROUPS = 4  # row groups per read (single-threaded: Arrow's reader threads keep freed buffers)
_SHARD_OPTIONS = {**_WRITE_OPTIONS, "write_statistics": False}


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


def _open_shard(path: str, entry: dict) -> pq.ParquetFile:
    file = plain_name(path, entry["file"])
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
    v = read_version(path)
    m = v.manifest
    wanted = shard_indices(v.index.num_clips, shard) if indices is None else sorted(indices)
    j = len(m["joint_names"])
    loc = v.index.read(("shard", "row"))
    shard_of, row_of = (loc.column(k).to_numpy()[wanted].tolist() for k in ("shard", "row"))
    by_file: dict[int, list[tuple[int, int]]] = {}
    for i, s, r in zip(wanted, shard_of, row_of, strict=True):
        by_file.setdefault(s, []).append((i, r))
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
                    f"{plain_name(path, entry['file'])}: shard data unreadable, corrupt on disk? "
                    f"({type(e).__name__}: {e})"
                ) from None
            take = [k * ROW_GROUP_CLIPS + i for k, g in enumerate(chunk) for i in by_group[g]]  # groups full
            yield from _table_to_clips(table.take(take), j)  # but a file's last, which comes last


def verify_store(path) -> list[str]:
    """Problems found, one line per bad file (a shard or the clip index) naming it: size or sha256
    differing from the manifest's, or unreadable. Reads the manifest only, so a broken index is
    reported here too."""
    path = os.fspath(path)
    m = parse_manifest(os.path.join(path, MANIFEST))[0]
    problems = []
    for entry in m["shards"] + ([m["index"]] if m["index"] else []):
        file = plain_name(path, entry["file"])
        try:
            if os.path.getsize(file) != entry["bytes"]:
                problems.append(f"{file}: {os.path.getsize(file)} bytes, manifest says {entry['bytes']}")
            elif file_sha256(file) != entry["sha256"]:
                problems.append(f"{file}: content hash differs from the manifest's (corrupt on disk?)")
        except OSError as e:
            problems.append(f"{file}: unreadable ({type(e).__name__}: {e})")
    return problems


class ShardWriter:
    """Writes clips into new shard files of at most `max_clips` clips in the store folder `path`.

    Used by the sharded writer and by each import worker; `finish()` returns the shard entries and
    per-clip index rows (row = position in its shard) for the clip index, which only the writer that
    holds the store lock commits (`commit`).
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
                "sha256": file_sha256(self._file),
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


def load_for_append(path, joint_names) -> tuple[dict, pa.Table]:
    """(manifest, clip index (all columns)) to extend: fresh ones when the folder has no manifest;
    joint names must match. The manifest is a private copy."""
    path = os.fspath(path)
    if not os.path.exists(os.path.join(path, MANIFEST)):
        return empty_manifest(joint_names), empty_index()
    v = read_version(path)
    if v.manifest["joint_names"] != list(joint_names):
        raise StoreError(f"{path}: store joint_names differ from the clips' joint_names")
    return copy.deepcopy(v.manifest), v.index.read()


def taken(index: pa.Table) -> tuple[set[str], set[str]]:
    """(names, content hashes) of the clips in `index`: what an append must not add again."""
    return set(index.column("name").to_pylist()), set(index.column("hash").to_pylist())


def remove_unreferenced(path, manifest: dict) -> None:
    """Delete shard and index files `manifest` does not reference, and temp files: left by writers
    that died, or replaced by this one (hold the store lock)."""
    live = {s["file"] for s in manifest["shards"]} | (
        {manifest["index"]["file"]} if manifest["index"] else set()
    )
    for entry in os.scandir(path):
        n = entry.name
        ours = n.endswith(".parquet") and n.startswith(("shard-", INDEX_PREFIX))
        if (ours or n.startswith((f".{MANIFEST}.tmp", f".{INDEX_PREFIX}"))) and n not in live:
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)


def commit(path, manifest: dict, index: pa.Table, shards: list[dict], clips: list[dict]) -> dict:
    """Write the new clip index (`index` + the rows of `clips`), then the manifest naming it and the
    added `shards`, atomically; returns the new manifest (`manifest` is left as it was).

    `clips` rows name their shard file; rows of clips that must not be listed (duplicates found
    after the write) are simply left out, their bytes stay unreferenced in the shard. A failure
    before the manifest's rename leaves the old manifest and index in place.
    """
    path = os.fspath(path)
    base = len(manifest["shards"])
    pos = {s["file"]: base + k for k, s in enumerate(shards)}
    table = pa.concat_tables([index.cast(INDEX_SCHEMA), rows_table(clips, pos)])
    generation = manifest.get("generation", 0) + 1
    new = {
        **manifest,
        "schema_version": SCHEMA_VERSION,
        "generation": generation,
        "shards": manifest["shards"] + shards,
        "index": write_index(path, table.combine_chunks(), generation),
        "totals": totals(table),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.tmp-", dir=path)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; the manifest is read like the shards
        with os.fdopen(fd, "w") as f:
            json.dump(new, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(path, MANIFEST))
    except BaseException:
        for file in (tmp, os.path.join(path, new["index"]["file"])):
            with contextlib.suppress(FileNotFoundError):
                os.remove(file)
        raise
    return new


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
        if append:
            manifest, index = load_for_append(path, joint_names)
            remove_unreferenced(path, manifest)
        else:
            manifest, index = empty_manifest(joint_names), empty_index()
        names, hashes = taken(index)
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
            manifest = commit(path, manifest, index, shards, rows)
        except BaseException:
            writer.abort()
            raise
        remove_unreferenced(path, manifest)
    return {"added": added, "duplicates": dups, "num_clips": manifest["totals"]["num_clips"]}


def upgrade(path) -> bool:
    """Rewrite an older store's manifest in the current schema (the clip index moves to its own
    file; shards untouched). False when it already is current."""
    path = os.fspath(path)
    with store_lock(path):
        if read_manifest(path)["schema_version"] == SCHEMA_VERSION:
            return False
        manifest, index = load_for_append(path, read_manifest(path)["joint_names"])
        remove_unreferenced(path, commit(path, manifest, index, [], []))
    return True
