"""Atomic checkpoints: a directory per save, complete only once renamed into place.

A save writes `<dir>/.tmp-iter_NNNNNN-<pid>/` (payload + `manifest.json` holding each file's
SHA-256 and size), fsyncs, then renames it to `<dir>/iter_NNNNNN/`. A crash mid-save leaves only a
`.tmp-*` folder, which `latest_checkpoint` never picks and the next save sweeps away. Loading checks
the manifest, so a truncated or edited file is reported instead of silently loaded.

The manifest proves integrity, not origin: whoever hands over a checkpoint writes its manifest too.
So `state.pt` is read with torch's `weights_only` unpickler, which builds tensors and plain data
(dicts, lists, tuples, strings, numbers) and calls nothing else, plus an allow-list of exactly the
other types our state holds: numpy arrays, dtypes and scalars (RLlib's module state and numpy's RNG
state are numpy). A file that names any other global is refused with `CheckpointError` before
anything from it runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:  # numpy >= 2 renamed numpy.core to numpy._core; checkpoints may name either
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1.26
    from numpy.core import multiarray as _multiarray

from sonic_ray.utils.io import file_sha256

MANIFEST = "manifest.json"
STATE_FILE = "state.pt"
CKPT_RE = re.compile(r"^iter_(\d{6,})$")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete, corrupt or unsafe; the message names the path."""


class UnsafeCheckpointError(CheckpointError):
    """A state file that names code to run; refused before anything from it ran."""


def _safe_globals() -> list:
    """The non-torch globals a checkpoint written by `save_checkpoint` may name: numpy's array,
    dtype and scalar reconstructors under both module names, and every numpy dtype class (an
    unpickled dtype's type is e.g. `numpy.dtypes.Float32DType`, and torch only builds allow-listed
    types). None of them calls anything but numpy's own constructors."""
    allowed: list = [np.ndarray, np.dtype, bytes]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(_multiarray._reconstruct, f"{mod}._reconstruct"), (_multiarray.scalar, f"{mod}.scalar")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [c for c in vars(dtypes).values() if isinstance(c, type) and issubclass(c, np.dtype)]
    return allowed


_REFUSED_RE = re.compile(  # the ways torch's weights_only unpickler names what it refused
    r"GLOBAL (\S+)|unrecognized function (\S+)|allowlisted via `add_safe_globals` but got (.+)"
)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    ckpt_root: str | Path,
    iteration: int,
    state: dict[str, Any],
    *,
    extra_files: dict[str, bytes] | None = None,
    keep: int = 0,
) -> Path:
    """Write `state` (anything torch.save takes) as `ckpt_root/iter_<iteration>` atomically.

    `extra_files` are small side files (e.g. config.yaml). `keep > 0` prunes all but the newest
    `keep` complete checkpoints after the new one is in place.
    """
    root = Path(ckpt_root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"iter_{iteration:06d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    tmp.mkdir()
    try:
        with open(tmp / STATE_FILE, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        for name, data in (extra_files or {}).items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        files = {p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size} for p in sorted(tmp.iterdir())}
        manifest = {"iteration": iteration, "saved_at": time.time(), "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same iteration (resume overlap): replace it whole
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep > 0:
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_iteration(path: str | Path) -> int | None:
    """The N of a checkpoint directory named iter_N, else None."""
    m = CKPT_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def list_checkpoints(ckpt_root: str | Path) -> list[Path]:
    """Checkpoint directories that have a manifest, oldest first (by iteration)."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = [
        (it, p)
        for p in root.iterdir()
        if (it := checkpoint_iteration(p)) is not None and (p / MANIFEST).is_file()
    ]
    return [p for _, p in sorted(found)]


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Return the manifest if every listed file exists with its recorded size and hash."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"{path}: no {MANIFEST}; the checkpoint is incomplete (interrupted save?)")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{mpath}: unreadable manifest ({e})") from e
    for name, info in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f}: listed in the manifest but missing")
        if f.stat().st_size != info["bytes"] or file_sha256(f) != info["sha256"]:
            raise CheckpointError(f"{f}: size or SHA-256 differs from the manifest (corrupt or edited)")
    return manifest


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint dir as given, or for a run dir (or its checkpoints/), its latest complete one."""
    p = Path(path).expanduser()
    if (p / MANIFEST).is_file():
        return p
    for root in (p / "checkpoints", p):
        ckpts = list_checkpoints(root)
        if ckpts:
            return ckpts[-1]
    raise CheckpointError(f"{p}: not a checkpoint and holds no complete checkpoint under checkpoints/")


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify and load the state saved by `save_checkpoint` (path: checkpoint or run dir)."""
    ckpt = resolve_checkpoint(path)
    verify_checkpoint(ckpt)
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            state = torch.load(ckpt / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as e:
        m = _REFUSED_RE.search(str(e))
        if m:  # torch's own text suggests weights_only=False, which is exactly what must not happen
            what = next(g for g in m.groups() if g).rstrip(".")
            raise UnsafeCheckpointError(
                f"{ckpt / STATE_FILE}: refused to load: it names {what}, which a sonic-ray checkpoint never "
                "holds (crafted or foreign file; nothing in it was run)"
            ) from None
        raise CheckpointError(f"{ckpt / STATE_FILE}: cannot be loaded ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{ckpt / STATE_FILE}: holds a {type(state).__name__}, not a checkpoint state dict"
        )
    return state


def load_for_resume(path: str | Path, *, report=print) -> tuple[Path, dict[str, Any]]:
    """(checkpoint, state) to resume from `path`: a checkpoint loads as given (any error raised);
    for a run dir, the newest checkpoint that verifies and loads, each skipped one `report`ed
    (a corrupt latest one falls back to the previous). An unsafe file is never skipped: raised."""
    p = Path(path).expanduser()
    if (p / MANIFEST).is_file():
        return p, load_checkpoint(p)
    ckpts = list_checkpoints(p / "checkpoints") or list_checkpoints(p)
    if not ckpts:
        raise CheckpointError(f"{p}: not a checkpoint and holds no complete checkpoint under checkpoints/")
    for ckpt in reversed(ckpts):
        try:
            return ckpt, load_checkpoint(ckpt)
        except UnsafeCheckpointError:
            raise
        except CheckpointError as e:
            report(f"sonic-ray: skipping {ckpt.name}: {e}")
    raise CheckpointError(f"{p}: none of its {len(ckpts)} checkpoint(s) verifies and loads (reasons above)")
