"""The sharded store's clip index: one Parquet file of per-clip columns beside the manifest.

Why a file of its own: at 100k clips the per-clip entries as JSON columns in the manifest were
22 MB, ~800k Python objects and 0.28 s to parse, paid by every process that opened the store,
though the driver needs two numeric columns and one clip. As Parquet (lz4, ~5 MB at 100k clips) a
reader decodes only the columns it asks for (frames + fps: < 1 ms; names + hashes for an append's
dedup: ~6 ms), and page checksums catch a corrupt file on read, as they do for the shards.

File `clips-<generation>-<random>.parquet`: one row per listed clip, in store order (the order
`shard_indices` numbers), columns `INDEX_SCHEMA`; `shard` is the position of the clip's shard in
the manifest's shard list, `row` its row in that shard. An index file is written once under a
fresh name (temp file, fsync, rename) and never rewritten: an append writes the whole index anew
(old rows + new) and then the manifest that names it, the commit point. A crash between the two
leaves the previous manifest naming the previous index; the next writer deletes the orphan.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sonic_ray.motion.store_format import StoreError
from sonic_ray.utils.io import file_sha256

INDEX_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("source", pa.string()),
        ("format", pa.string()),
        ("fps", pa.float64()),
        ("frames", pa.int64()),
        ("hash", pa.string()),
        ("shard", pa.int32()),
        ("row", pa.int32()),
        ("fk_max_err_m", pa.float64()),
        ("warnings", pa.list_(pa.string())),
    ]
)
COLUMNS = tuple(INDEX_SCHEMA.names)
INDEX_PREFIX = "clips-"  # index files: clips-*.parquet; their temp files: .clips-*
_OPTIONS = dict(compression="lz4", write_page_checksum=True)


def rows_table(rows: Sequence[dict], shard_pos: dict[str, int]) -> pa.Table:
    """Index rows of `ShardWriter` clip dicts (their "shard" a file name, mapped by `shard_pos`
    to its position in the manifest's shard list)."""
    cols = {k: [r[k] for r in rows] for k in COLUMNS if k != "shard"}
    cols["shard"] = [shard_pos[r["shard"]] for r in rows]
    cols["warnings"] = [list(w or []) for w in cols["warnings"]]
    return pa.table(cols, schema=INDEX_SCHEMA)


def totals(table: pa.Table) -> dict:
    """What `motions info` prints, kept in the manifest so it never opens the index."""
    by_format = pc.value_counts(table.column("format")).to_pylist()
    warned = pc.sum(pc.greater(pc.list_value_length(table.column("warnings")), 0)).as_py() or 0
    return _totals(
        table.column("frames").to_numpy(),
        table.column("fps").to_numpy(),
        {d["values"]: d["counts"] for d in by_format},
        warned,
    )


def json_totals(columns: dict, warnings: dict) -> dict:
    """`totals` of a schema-2 manifest (per-clip JSON columns, warnings by clip name)."""
    return _totals(columns["frames"], columns["fps"], Counter(columns["format"]), len(warnings))


def _totals(frames, fps, by_format: dict, warned: int) -> dict:
    frames, fps = np.asarray(frames, dtype=np.int64), np.asarray(fps, dtype=np.float64)
    return {
        "num_clips": len(frames),
        "total_frames": int(frames.sum()),
        "total_duration_s": float(((frames - 1) / fps).sum()) if len(frames) else 0.0,
        "by_format": dict(sorted(by_format.items())),
        "num_with_warnings": int(warned),
    }


def _json_column(columns: dict, warnings: dict, name: str) -> pa.Array:
    field = INDEX_SCHEMA.field(name)
    if name != "warnings":
        return pa.array(columns[name], field.type)
    if not warnings:  # the common case: offsets only
        n = len(columns["name"])
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string()))
    return pa.array([warnings.get(n, []) for n in columns["name"]], field.type)


def write_index(folder: str, table: pa.Table, generation: int) -> dict:
    """Write `table` as a new index file in `folder` (temp file, fsync, rename); its manifest entry
    {"file", "clips", "bytes", "sha256"}. The name is new, so no reader's file is replaced."""
    name = f"{INDEX_PREFIX}{generation:06d}-{uuid.uuid4().hex[:8]}.parquet"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=folder)
    os.close(fd)
    try:
        pq.write_table(table.cast(INDEX_SCHEMA), tmp, **_OPTIONS)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the index is read like the shards
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        entry = {
            "file": name,
            "clips": table.num_rows,
            "bytes": os.path.getsize(tmp),
            "sha256": file_sha256(tmp),
        }
        os.replace(tmp, os.path.join(folder, name))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return entry


class ClipIndex:
    """A committed clip index, read column by column (each column decoded once, then kept).

    `open` checks what is cheap (size, Parquet footer, schema, row count against the manifest's
    entry); page checksums are verified as columns are read. Every failure is a StoreError naming
    the file and what the manifest expected. `from_json` serves a schema-2 manifest's columns,
    each converted when first asked for, `in_memory` a table.
    """

    def __init__(self, file: str, expected: str, num_clips: int, decode: Callable | None):
        self.file, self.expected, self.num_clips = file, expected, num_clips
        self._decode = decode  # column names -> arrays
        self._cols: dict[str, pa.ChunkedArray | pa.Array] = {}

    @classmethod
    def open(cls, folder: str, entry: dict, manifest_file: str) -> ClipIndex:
        """Raises FileNotFoundError as such (the caller re-reads a manifest replaced meanwhile)."""
        file = os.path.join(folder, entry["file"])
        expected = (
            f"expected the Parquet clip index of {entry['clips']} clips, {entry['bytes']} bytes, "
            f"that {manifest_file} names"
        )
        size = os.path.getsize(file)
        try:
            if size != entry["bytes"]:
                raise ValueError(f"size {size} bytes")
            pf = pq.ParquetFile(pa.memory_map(file), page_checksum_verification=True)
            missing = [f.name for f in INDEX_SCHEMA if f not in pf.schema_arrow]
            if missing:
                raise ValueError(f"no column(s) {', '.join(missing)} of type {INDEX_SCHEMA}")
            if pf.metadata.num_rows != entry["clips"]:
                raise ValueError(f"{pf.metadata.num_rows} rows")
        except (OSError, ValueError, pa.ArrowException) as e:
            raise StoreError(f"{file}: clip index unreadable ({type(e).__name__}: {e}); {expected}") from None
        return cls(
            file, expected, pf.metadata.num_rows, lambda c: pf.read(columns=c, use_threads=False).columns
        )

    @classmethod
    def from_json(cls, columns: dict, warnings: dict, source: str) -> ClipIndex:
        """The index of a schema-2 manifest: per-clip JSON columns, warnings by clip name."""

        def decode(names):
            return [_json_column(columns, warnings, c) for c in names]

        return cls(source, f"expected the clip columns of {source}", len(columns["name"]), decode)

    @classmethod
    def in_memory(cls, table: pa.Table, source: str) -> ClipIndex:
        index = cls(source, f"the clip columns of {source}", table.num_rows, None)
        index._cols.update(zip(table.column_names, table.columns))
        return index

    def read(self, columns: Sequence[str] = COLUMNS) -> pa.Table:
        """Table of `columns` (names of INDEX_SCHEMA), decoding those not read before."""
        todo = [c for c in columns if c not in self._cols]
        if todo:
            try:
                self._cols.update(zip(todo, self._decode(todo)))
            except (OSError, KeyError, TypeError, pa.ArrowException) as e:
                raise StoreError(
                    f"{self.file}: clip index data unreadable, corrupt on disk? ({type(e).__name__}: "
                    f"{e}); {self.expected}"
                ) from None
        return pa.Table.from_arrays([self._cols[c] for c in columns], names=list(columns))

    def warnings(self, limit: int | None = None) -> dict[str, list[str]]:
        """{clip name: warnings} of the first `limit` (default all) clips that have any; names are
        decoded only when some clip has warnings, Python objects built only for those returned."""
        w = self.read(["warnings"]).column(0)
        mask = pc.greater(pc.list_value_length(w), 0)
        if not pc.any(mask).as_py():
            return {}
        t = self.read(["name", "warnings"]).filter(mask)
        t = t if limit is None else t.slice(0, limit)
        return dict(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))
