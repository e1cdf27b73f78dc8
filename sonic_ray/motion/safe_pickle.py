"""Load motion pickles (plain `pickle` or `joblib.dump`) without running code from the file.

A pickle names globals and calls them; an unrestricted load of a downloaded motion file is
arbitrary code execution. Our unpickler resolves only an allow-list: numpy's array/dtype/scalar
reconstructors, plain containers, and joblib's array wrapper (whose fields are checked before
joblib reads the array bytes). Any other global raises `UnsafePickleError` naming it, before
anything is called.

One loader serves both formats: joblib's `NumpyUnpickler` reads plain pickles unchanged, and
joblib files (possibly compressed) need its BUILD hook to splice the raw array bytes back in.
Without joblib installed, plain pickles still load and joblib files are refused by name.
"""

from __future__ import annotations

import _codecs
import collections
import os
import pickle

import numpy as np

try:  # numpy >= 2 renamed numpy.core to numpy._core; pickles may name either
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.26
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

try:
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap
except ImportError:  # joblib is optional: plain pickles still load
    NumpyArrayWrapper = NumpyUnpickler = _validate_fileobject_and_memmap = None


class UnsafePickleError(pickle.UnpicklingError):
    """The file asked for a global outside the allow-list (nothing from it was executed)."""


def _latin1_encode(text, encoding="latin1"):
    """numpy arrays in pickle protocols 0-2 carry their bytes as latin-1 text; nothing else."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"_codecs.encode only admitted for latin1 text, got encoding {encoding!r}")
    return _codecs.encode(text, encoding)


_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(_mod, "scalar")] = _multiarray.scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _numeric._frombuffer


def _find_allowed(path: str, module: str, name: str, extra: dict):
    obj = _ALLOWED.get((module, name)) or extra.get((module, name))
    if obj is None:
        raise UnsafePickleError(
            f"{path}: refused to load global {module}.{name} (only numpy arrays and plain data)"
        )
    return obj


class _PlainRestricted(pickle.Unpickler):
    def __init__(self, file, path: str):
        super().__init__(file)
        self._path = path

    def find_class(self, module, name):
        return _find_allowed(self._path, module, name, {})


if NumpyUnpickler is not None:

    class _JoblibRestricted(NumpyUnpickler):
        """joblib's unpickler with the allow-list; its array wrapper is checked before use."""

        dispatch = NumpyUnpickler.dispatch.copy()

        def find_class(self, module, name):
            extra = {("joblib.numpy_pickle", "NumpyArrayWrapper"): NumpyArrayWrapper}
            return _find_allowed(self.filename, module, name, extra)

        def load_build(self):
            inst, state = self.stack[-2], self.stack[-1]
            if isinstance(inst, NumpyArrayWrapper):
                _check_wrapper_state(self.filename, state)
            NumpyUnpickler.load_build(self)

        dispatch[pickle.BUILD[0]] = load_build


def _check_wrapper_state(path: str, state) -> None:
    """joblib reads the array described here straight from the file: only plain ndarrays."""
    ok = (
        isinstance(state, dict)
        and state.get("subclass") is np.ndarray
        and isinstance(state.get("dtype"), np.dtype)
        and not state["dtype"].hasobject
        and state.get("order") in ("C", "F")
        and isinstance(state.get("shape"), tuple)
    )
    if not ok:
        raise UnsafePickleError(f"{path}: joblib array wrapper with unexpected fields refused")


def safe_load(path) -> object:
    """Load a plain or joblib pickle at `path`, admitting only numpy arrays and plain data."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        if NumpyUnpickler is None:
            return _PlainRestricted(f, path).load()
        with _validate_fileobject_and_memmap(f, path, None) as (fobj, _):
            if isinstance(fobj, str):
                raise UnsafePickleError(f"{path}: joblib < 0.10 multi-file format is not supported")
            unpickler = _JoblibRestricted(path, fobj, ensure_native_byte_order=True)
            return unpickler.load()
