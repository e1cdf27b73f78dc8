import os
import pickle

import joblib
import numpy as np
import pytest

from sonic_ray.motion.safe_pickle import UnsafePickleError, safe_load


class _Payload:
    """Unpickling this would create the marker file (it calls builtins.open)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _data():
    return {
        "walk": {
            "dof": np.arange(12, dtype=np.float32).reshape(3, 4),
            "fps": np.float64(30),
            "n": np.int64(3),
        },
        "meta": [1, 2.5, "x", (None, True)],
    }


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_pickle_loads_numpy_and_containers(tmp_path, protocol):
    path = tmp_path / "ok.pkl"
    with open(path, "wb") as f:
        pickle.dump(_data(), f, protocol=protocol)
    got = safe_load(path)
    np.testing.assert_array_equal(got["walk"]["dof"], _data()["walk"]["dof"])
    assert got["walk"]["fps"] == 30.0 and got["meta"] == _data()["meta"]


@pytest.mark.parametrize("compress", [0, 3])
def test_joblib_files_load(tmp_path, compress):
    path = tmp_path / "ok.pkl"
    joblib.dump(_data(), path, compress=compress)
    got = safe_load(path)
    np.testing.assert_array_equal(got["walk"]["dof"], _data()["walk"]["dof"])


@pytest.mark.parametrize("writer", ["pickle", "joblib"])
def test_malicious_reduce_is_rejected_and_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    payload = {"dof": np.zeros((2, 29)), "x": _Payload(marker)}
    if writer == "joblib":
        joblib.dump(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match=r"builtins\.open|io\.open"):
        safe_load(path)
    assert not marker.exists()


def test_ndarray_subclass_in_joblib_wrapper_is_rejected(tmp_path):
    path = tmp_path / "sub.pkl"
    joblib.dump({"a": np.ma.masked_array([1.0, 2.0])}, path)
    with pytest.raises(UnsafePickleError, match="numpy.ma"):
        safe_load(path)
    assert os.path.exists(path)
