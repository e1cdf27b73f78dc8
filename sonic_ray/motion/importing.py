"""The import pipeline shared by the CLI and the benchmark: files -> validated clips -> store.

Import appends to an existing store. A clip whose name is already in the store, or appears
twice in one import, is rejected (field `name`) rather than renamed: re-running an import over
the same folder must not duplicate data. Bad files and bad clips are collected as rejections
while the rest stream into the store; the store is replaced atomically at the end, and only if
something was imported. The store's lock is held for the whole import, so two imports into one
store run one after the other and both land.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sonic_ray.motion.importers import find_motion_files, load_file
from sonic_ray.motion.store import MotionClip, store_lock, store_names, write_store
from sonic_ray.motion.validate import ClipRejected, FkFn, validate_clip


def import_motions(
    paths: Sequence,
    *,
    out,
    joint_names: Sequence[str],
    lower: Sequence[float] | None = None,
    upper: Sequence[float] | None = None,
    fk: FkFn | None = None,
    fps: float | None = None,
    on_file: Callable[[str], None] | None = None,
) -> dict:
    """Import files/folders into the store `out`. Returns the report
    {"imported": [{"name", "source", "frames", "fps", "fk_max_err_m"}], "rejected": [{"source", "reason"}]}
    plus "warnings": {clip name: [..]} for clips that imported with warnings.
    """
    with store_lock(out):  # held from reading the store's names to replacing it: imports serialise
        return _import_locked(
            paths, out=out, joint_names=joint_names, lower=lower, upper=upper, fk=fk, fps=fps, on_file=on_file
        )


def _import_locked(paths, *, out, joint_names, lower, upper, fk, fps, on_file) -> dict:
    files = find_motion_files(paths)
    taken = store_names(out)
    imported: list[dict] = []
    rejected: list[dict] = []
    warnings: dict[str, list[str]] = {}

    def reject(e: ClipRejected) -> None:
        rejected.append({"source": e.source, "reason": f"{e.field}: {e.reason}"})

    def clips():
        for path in files:
            try:
                loaded = load_file(path, joint_names=joint_names, fps=fps)
            except ClipRejected as e:
                loaded = [e]
            except Exception as e:  # an unreadable file must not abort the other files
                loaded = [ClipRejected(str(path), "file", f"{type(e).__name__}: {e}")]
            for item in loaded:
                try:
                    if isinstance(item, ClipRejected):
                        raise item
                    clip = _checked(item, taken, joint_names=joint_names, lower=lower, upper=upper, fk=fk)
                except ClipRejected as e:
                    reject(e)
                    continue
                except Exception as e:  # a check that trips over odd data rejects that clip only
                    source = getattr(item, "source", str(path))
                    reject(ClipRejected(source, "clip", f"{type(e).__name__}: {e}"))
                    continue
                taken.add(clip.name)
                imported.append(_summary(clip))
                if clip.warnings:
                    warnings[clip.name] = list(clip.warnings)
                yield clip
            if on_file is not None:
                on_file(str(path))

    stream = clips()
    first = next(stream, None)
    if first is not None:
        write_store(out, _chain(first, stream), joint_names=joint_names, append=True)
    return {"imported": imported, "rejected": rejected, "warnings": warnings}


def _chain(first, rest):
    yield first
    yield from rest


def _checked(clip: MotionClip, taken: set[str], **kw) -> MotionClip:
    if clip.name in taken:
        raise ClipRejected(
            clip.source, "name", f"clip name {clip.name!r} already in the store or this import"
        )
    return validate_clip(clip, **kw)


def _summary(clip: MotionClip) -> dict:
    return {
        "name": clip.name,
        "source": clip.source,
        "frames": clip.num_frames,
        "fps": clip.fps,
        "fk_max_err_m": clip.fk_max_err_m,
    }
