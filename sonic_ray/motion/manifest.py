"""The sharded store's manifest and clip index as readers see them: one committed version, cached.

A reader takes the manifest and the index file it names together (`_read`): should a writer
replace the manifest (and delete the old index) between the two, the reader starts over with the
new manifest. A version stays cached while the manifest is the same file (inode, mtime, size), so
the driver's several questions at start-up parse it once; the index's columns are decoded as they
are asked for (`clip_index.ClipIndex`). Schema-2 manifests (per-clip JSON columns) are brought to
schema 3's keys here, with their index built in memory. The layout: `sharded`'s docstring.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from sonic_ray.motion.clip_index import COLUMNS, INDEX_SCHEMA, ClipIndex, json_totals, totals
from sonic_ray.motion.store_format import StoreError

FORMAT = "sonic_ray.sharded_motion_store"
SCHEMA_VERSION = 3
READABLE_VERSIONS = (2, 3)  # 2: per-clip JSON columns in the manifest
MANIFEST = "manifest.json"
_INFO_COLUMNS = ("name", "source", "format", "fps", "frames", "warnings", "fk_max_err_m")


@dataclass
class Version:
    """One committed version of a store: its manifest and clip index, opened together."""

    key: tuple  # the manifest file's (inode, mtime_ns, size)
    manifest: dict
    index: ClipIndex
    info: dict = field(default_factory=dict)


_cache: dict[str, Version] = {}  # manifest path -> the version last read


def empty_index() -> pa.Table:
    return INDEX_SCHEMA.empty_table()


def empty_manifest(joint_names: list[str]) -> dict:
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "joint_names": list(joint_names),
        "generation": 0,
        "shards": [],
        "index": None,
        "totals": totals(empty_index()),
    }


def _manifest_key(mpath: str) -> tuple:
    try:
        st = os.stat(mpath)
    except FileNotFoundError:
        raise StoreError(
            f"{mpath}: no manifest (not a sharded motion store, or nothing imported yet)"
        ) from None
    return st.st_ino, st.st_mtime_ns, st.st_size


def parse_manifest(mpath: str) -> tuple[dict, ClipIndex | None]:
    """The manifest as a dict, and for schema 2 (brought to schema 3's keys here) the index its
    JSON columns hold; None for schema 3, whose index is a file (`ClipIndex.open`)."""
    try:
        with open(mpath, "rb") as f:
            m = json.loads(f.read())
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        if m.get("schema_version") not in READABLE_VERSIONS:
            raise ValueError(
                f"schema_version {m.get('schema_version')} unsupported (expected one of {READABLE_VERSIONS})"
            )
        if m["schema_version"] == 2:
            columns, warnings = m.pop("clips"), m.pop("warnings")
            if any(len(columns[k]) != len(columns["name"]) for k in COLUMNS if k != "warnings"):
                raise ValueError("clip index columns differ in length")
            m.update(generation=0, index=None, totals=json_totals(columns, warnings))
            return m, ClipIndex.from_json(columns, warnings, mpath)
        if m["index"] is not None:
            plain_name(os.path.dirname(mpath), m["index"]["file"])
        _ = m["shards"], m["joint_names"], m["totals"]["num_clips"]
    except (ValueError, KeyError, TypeError, pa.ArrowException) as e:
        raise StoreError(f"{mpath}: manifest unreadable ({type(e).__name__}: {e})") from None
    return m, None


def read_version(path) -> Version:
    """The store's current version (cached while the manifest file is the same file)."""
    path = os.fspath(path)
    mpath = os.path.join(path, MANIFEST)
    for _ in range(3):  # a writer may replace the manifest (and delete its index) as we read
        key = _manifest_key(mpath)
        hit = _cache.get(mpath)
        if hit is not None and hit.key == key:
            return hit
        m, index = parse_manifest(mpath)
        if index is None and m["index"] is None:
            index = ClipIndex.in_memory(empty_index(), mpath)
        elif index is None:
            try:
                index = ClipIndex.open(path, m["index"], mpath)
            except FileNotFoundError:
                if _manifest_key(mpath) != key:
                    continue
                raise StoreError(
                    f"{os.path.join(path, m['index']['file'])}: clip index missing; expected the clip "
                    f"index of {m['index']['clips']} clips that {mpath} names"
                ) from None
        _cache[mpath] = Version(key, m, index)
        return _cache[mpath]
    raise StoreError(f"{mpath}: replaced on every read (a writer committing in a loop?)")


def read_manifest(path) -> dict:
    """The parsed manifest of the store folder `path` (cached while the file is unchanged; callers
    must not modify it)."""
    return read_version(path).manifest


def read_index(path, columns=COLUMNS) -> pa.Table:
    """`columns` of the store's clip index (one row per clip, store order), decoded on first use."""
    return read_version(path).index.read(columns)


def forget(path) -> None:
    """Drop the cached manifest and index columns of `path`: for a runner that has read what it
    needs; a later read opens the files again."""
    _cache.pop(os.path.join(os.fspath(path), MANIFEST), None)


def sharded_info(path, *, clips: bool = True) -> dict:
    """`store.store_info` for a sharded store: totals from the manifest; with `clips`, the per-clip
    dicts from the index (100k clips: ~0.3 s, built once per version; callers must not modify)."""
    v = read_version(path)
    m = v.manifest
    if "summary" not in v.info:
        v.info["summary"] = {
            "path": os.fspath(path),
            "schema_version": m["schema_version"],
            "joint_names": m["joint_names"],
            **m["totals"],
            "num_shards": len(m["shards"]),
            "store_bytes": sum(s["bytes"] for s in m["shards"]),
        }
    if not clips:
        return dict(v.info["summary"])
    if "clips" not in v.info:
        v.info["clips"] = v.index.read(_INFO_COLUMNS).to_pylist()
    return {**v.info["summary"], "clips": v.info["clips"]}


def clip_warnings(path, limit: int | None = None) -> dict[str, list[str]]:
    """{clip name: warnings} of the first `limit` clips that have any, from the index's columns."""
    return read_version(path).index.warnings(limit)


def clip_frames_fps(path) -> tuple[np.ndarray, np.ndarray]:
    """(frames (C,), fps (C,)) of every clip in store order, from two columns of the index."""
    t = read_index(path, ("frames", "fps"))
    return t.column(0).to_numpy().astype(np.int64), t.column(1).to_numpy().astype(np.float64)


def plain_name(path: str, name: str) -> str:
    if not isinstance(name, str) or os.sep in name or name.startswith("."):
        raise StoreError(f"{path}/{MANIFEST}: file entry {name!r} is not a plain file name")
    return os.path.join(path, name)
