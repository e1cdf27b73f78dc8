"""Reference motions: import (many formats, validated, safely unpickled) into a Parquet store (one
file, or a sharded folder with a manifest),
and serve them as batched torch tensors at the control rate (MotionLib). Ray-free."""

from sonic_ray.motion.store import MotionClip, StoreError, iter_store, read_store, store_info, write_store
from sonic_ray.motion.validate import ClipRejected, validate_clip

__all__ = [
    "ClipRejected",
    "MotionClip",
    "StoreError",
    "iter_store",
    "read_store",
    "store_info",
    "validate_clip",
    "write_store",
]
