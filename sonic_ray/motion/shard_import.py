"""Import into a sharded store, Ray-free: the per-batch worker and the serial engine.

An import is a list of files cut into batches. `ImportWorker` turns one batch into shard files:
each file is read by today's importers (content detection, restricted unpickler), each clip is
validated (`validate_clip`: shapes, quaternions, joint limits, FK check), hashed, and written by a
`ShardWriter`; files and clips that fail are returned as rejections (path, field, reason), never
raised. The same worker runs in-process (`run_serial`) or as a Ray Data stage
(`sonic_ray.ingest`); only the process that holds the store lock commits: `import_sharded` sorts
the batch results into file order, drops clips whose content or name an earlier batch already
added, and writes the clip index and the manifest once (`sharded.commit`). A failure before that
leaves the previous manifest and index, and the new files are removed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from sonic_ray.motion.importers import find_motion_files, load_file
from sonic_ray.motion.sharded import (
    MAX_SHARD_CLIPS,
    ShardWriter,
    clip_hash,
    commit,
    load_for_append,
    remove_unreferenced,
    taken,
)
from sonic_ray.motion.store import StoreError, store_lock
from sonic_ray.motion.validate import ClipRejected, validate_clip

# (robot name) -> (joint_names, lower, upper, fk or None): `motion.cli.robot_context` or a test's
ContextFn = Callable[[str], tuple]


def list_files(paths: Sequence, list_file: str | None = None) -> list[str]:
    """Motion files under `paths` (folders searched recursively) plus the paths named one per line in
    `list_file` (blank lines and lines starting with # skipped; relative paths are relative to it)."""
    named = list(paths)
    if list_file:
        base = os.path.dirname(os.path.abspath(list_file))
        with open(list_file) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    named.append(line if os.path.isabs(line) else os.path.join(base, line))
    return [str(p) for p in find_motion_files(named)]


class ImportWorker:
    """Reads, validates and writes one batch of files into new shards of `store`.

    Called with {"idx": (K,) int, "path": (K,) str}; returns {"result": (1,) JSON str} holding the
    batch's first idx, shard entries, clip rows (`ShardWriter`), rejections and duplicates.
    Robot data is built once per worker by `context_fn(robot)` (FK models do not pickle cheaply).
    """

    def __init__(
        self,
        store: str,
        *,
        robot: str,
        context_fn: ContextFn,
        fps: float | None = None,
        taken_names: Iterable[str] = (),
        taken_hashes: Iterable[str] = (),
        max_clips: int = MAX_SHARD_CLIPS,
    ):
        self.store, self.fps, self.max_clips = store, fps, max_clips
        self.joint_names, self.lower, self.upper, self.fk = context_fn(robot)
        self.taken_names, self.taken_hashes = set(taken_names), set(taken_hashes)

    def __call__(self, batch: dict) -> dict:
        writer = ShardWriter(self.store, self.joint_names, max_clips=self.max_clips)
        rejected: list[dict] = []
        duplicates: list[str] = []
        try:
            for path in batch["path"]:
                for item in self._load(str(path)):
                    if isinstance(item, ClipRejected):
                        rejected.append({"source": item.source, "reason": f"{item.field}: {item.reason}"})
                        continue
                    h = clip_hash(item)
                    if h in self.taken_hashes:
                        duplicates.append(item.name)
                    elif item.name in self.taken_names:
                        rejected.append(
                            {
                                "source": item.source,
                                "reason": f"name: clip name {item.name!r} already "
                                "in the store with other content",
                            }
                        )
                    else:
                        writer.add(item, content_hash=h)
            shards, clips = writer.finish()
        except BaseException:
            writer.abort()
            raise
        out = {
            "idx": int(batch["idx"][0]),
            "files": len(batch["path"]),
            "shards": shards,
            "clips": clips,
            "rejected": rejected,
            "duplicates": duplicates,
        }
        return {"result": np.array([json.dumps(out)])}

    def _load(self, path: str) -> list:
        """Validated clips of one file, with ClipRejected in place of each bad file or clip."""
        try:
            loaded = load_file(path, joint_names=self.joint_names, fps=self.fps)
        except ClipRejected as e:
            return [e]
        except Exception as e:  # an unreadable file must not abort the other files
            return [ClipRejected(path, "file", f"{type(e).__name__}: {e}")]
        out = []
        for item in loaded:
            if isinstance(item, ClipRejected):
                out.append(item)
                continue
            try:
                out.append(
                    validate_clip(
                        item, joint_names=self.joint_names, lower=self.lower, upper=self.upper, fk=self.fk
                    )
                )
            except ClipRejected as e:
                out.append(e)
            except Exception as e:  # a check that trips over odd data rejects that clip only
                out.append(ClipRejected(item.source, "clip", f"{type(e).__name__}: {e}"))
        return out


def batches(files: Sequence[str], batch_files: int) -> list[dict]:
    """The import's input rows cut into batches of `batch_files` files: [{"idx", "path"}]."""
    return [
        {"idx": np.arange(s, min(s + batch_files, len(files))), "path": np.array(files[s : s + batch_files])}
        for s in range(0, len(files), batch_files)
    ]


def default_batch_files(num_files: int, workers: int) -> int:
    """Files per batch: about 4 batches per worker (load balance), at most 256 files."""
    return max(1, min(256, math.ceil(num_files / (4 * max(1, workers)))))


def run_serial(files: Sequence[str], worker_kwargs: dict, *, batch_files: int, on_result=None) -> list[dict]:
    """The serial engine: one ImportWorker in this process over every batch."""
    worker = ImportWorker(**worker_kwargs)
    results = []
    for b in batches(files, batch_files):
        results.append(json.loads(worker(b)["result"][0]))
        if on_result is not None:
            on_result(results[-1])
    return results


def import_sharded(
    files: Sequence[str],
    *,
    out,
    robot: str,
    context_fn: ContextFn,
    fps: float | None = None,
    engine: Callable | None = None,
    batch_files: int = 64,
    on_result: Callable[[dict], None] | None = None,
) -> dict:
    """Import `files` into the sharded store `out` (a folder, created) under its lock.

    engine(files, worker_kwargs, batch_files=, on_result=) -> batch results; default `run_serial`.
    Returns {"imported": [{"name","source","frames","fps","fk_max_err_m"}], "rejected": [{"source",
    "reason"}], "duplicates": [names], "warnings": {name: [...]}} like `importing.import_motions`.
    """
    out = os.fspath(out)
    if os.path.isfile(out):
        raise StoreError(f"{out}: is a file; a sharded motion store is a folder (see `motions migrate`)")
    os.makedirs(out, exist_ok=True)
    engine = engine or run_serial
    with store_lock(out):
        joint_names = context_fn(robot)[0]
        manifest, index = load_for_append(out, joint_names)
        remove_unreferenced(out, manifest)
        names, hashes = taken(index)
        kw = dict(
            store=out, robot=robot, context_fn=context_fn, fps=fps, taken_names=names, taken_hashes=hashes
        )
        try:
            results = sorted(
                engine(list(files), kw, batch_files=batch_files, on_result=on_result), key=lambda r: r["idx"]
            )
            report, rows, shards = _merge(results, names, hashes)
            if rows:
                manifest = commit(out, manifest, index, shards, rows)
        finally:
            remove_unreferenced(out, manifest)  # files of a failed import, shards of only duplicates
    return report


def _merge(results: list[dict], names: set, hashes: set) -> tuple[dict, list[dict], list[dict]]:
    """Batch results in file order -> report, clip rows to list, shard entries to list. A clip whose
    hash or name an earlier batch already took stays in its shard unreferenced."""
    report = {"imported": [], "rejected": [], "duplicates": [], "warnings": {}}
    rows, used = [], set()
    for r in results:
        report["rejected"] += r["rejected"]
        report["duplicates"] += r["duplicates"]
        for c in r["clips"]:
            if c["hash"] in hashes:
                report["duplicates"].append(c["name"])
                continue
            if c["name"] in names:
                report["rejected"].append(
                    {
                        "source": c["source"],
                        "reason": f"name: clip name {c['name']!r} appears twice in this import",
                    }
                )
                continue
            names.add(c["name"])
            hashes.add(c["hash"])
            rows.append(c)
            used.add(c["shard"])
            report["imported"].append({k: c[k] for k in ("name", "source", "frames", "fps", "fk_max_err_m")})
            if c["warnings"]:
                report["warnings"][c["name"]] = c["warnings"]
    shards = [s for r in results for s in r["shards"] if s["file"] in used]
    return report, rows, shards
