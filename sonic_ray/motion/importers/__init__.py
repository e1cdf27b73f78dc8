"""Read motion files of any supported format into `MotionClip`s (not yet validated).

The format is decided by the file's content, not its extension: zip magic -> mjlab NPZ, pickle
or joblib/compressed magic -> robot pickle (SONIC/PHC or GMR by keys), text whose header names
`root_translateX` -> BONES-SEED CSV, numeric text -> LAFAN1-G1 CSV. Folders are searched
recursively for files with a motion-like extension (`MOTION_SUFFIXES`); files named explicitly
are read whatever their extension.
"""

from __future__ import annotations

import os
from pathlib import Path

from sonic_ray.motion.importers.npz import load_mjlab_npz
from sonic_ray.motion.importers.pickles import load_robot_pickle
from sonic_ray.motion.importers.tables import load_bones_csv, load_lafan_csv
from sonic_ray.motion.store import MotionClip
from sonic_ray.motion.validate import ClipRejected

MOTION_SUFFIXES = {".pkl", ".pickle", ".joblib", ".csv", ".npz"}
# joblib.dump(compress=...) writes zlib ('x'), gzip, bz2, xz, lzma or its own 'ZF' prefix
_PICKLE_MAGIC = (
    b"\x80",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"\x5d\x00\x00",
    b"ZF",
    b"x\x01",
    b"x^",
    b"x\x9c",
    b"x\xda",
)

__all__ = ["MOTION_SUFFIXES", "detect_format", "find_motion_files", "load_file"]


def detect_format(path) -> str:
    """'npz', 'pickle', 'bones_csv' or 'lafan_csv'; ClipRejected(field='format') otherwise."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    if head.startswith(_PICKLE_MAGIC):
        return "pickle"
    try:
        first = head.decode("utf-8").splitlines()[0] if head else ""
    except UnicodeDecodeError:
        first = None
    if first is not None and "root_translateX" in first:
        return "bones_csv"
    if first:
        try:
            [float(x) for x in first.split(",")]
            return "lafan_csv"
        except ValueError:
            pass
    raise ClipRejected(
        str(path), "format", "not a recognised motion file (NPZ, pickle, LAFAN1-G1 or BONES-SEED CSV)"
    )


def find_motion_files(paths) -> list[Path]:
    """Expand folders recursively (motion-like suffixes only, sorted); keep named files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MOTION_SUFFIXES)
        else:
            out.append(p)
    return out


def load_file(
    path, *, joint_names, fps: float | None = None, name: str | None = None
) -> list[MotionClip | ClipRejected]:
    """All clips in one file. File-level problems raise ClipRejected; a bad clip inside a
    multi-clip pickle is returned as a ClipRejected in the list so its siblings still import.

    fps: frame rate for files that carry none (CSV; pickles without `fps`).
    name: clip name for single-clip files (default: the file stem); multi-clip pickles use keys.
    """
    if not os.path.isfile(path):
        raise ClipRejected(str(path), "path", "no such file")
    name = name or Path(path).stem
    kind = detect_format(path)
    if kind == "npz":
        return [load_mjlab_npz(path, name=name)]
    if kind == "pickle":
        return load_robot_pickle(path, name=name, fps=fps)
    if kind == "bones_csv":
        return [load_bones_csv(path, name=name, joint_names=joint_names, fps=fps)]
    return [load_lafan_csv(path, name=name, num_joints=len(joint_names), fps=fps)]
