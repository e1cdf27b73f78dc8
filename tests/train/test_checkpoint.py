import collections
import io
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_builders import RunsCode, forge_checkpoint, torch_saved

from sonic_ray.train.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    list_checkpoints,
    load_checkpoint,
    load_for_resume,
    resolve_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from sonic_ray.utils.rng import rng_state, set_rng_state


def _state(i):
    return {"iteration": i, "weights": torch.arange(4.0) * i, "rng": torch.get_rng_state()}


def test_save_load_roundtrip_and_latest(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    for i in (5, 10, 15):
        save_checkpoint(root, i, _state(i), extra_files={"config.yaml": b"a: 1\n"})
    assert [p.name for p in list_checkpoints(root)] == ["iter_000005", "iter_000010", "iter_000015"]
    assert resolve_checkpoint(tmp_path / "run").name == "iter_000015"
    state = load_checkpoint(tmp_path / "run")
    assert state["iteration"] == 15
    torch.testing.assert_close(state["weights"], torch.arange(4.0) * 15)
    assert (root / "iter_000015" / "config.yaml").read_bytes() == b"a: 1\n"


def test_keep_prunes_oldest(tmp_path):
    for i in range(1, 6):
        save_checkpoint(tmp_path, i, _state(i), keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["iter_000004", "iter_000005"]


def test_crash_mid_save_leaves_previous_checkpoint_latest(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, _state(1))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "rename", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, _state(2))
    monkeypatch.undo()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["iter_000001"]
    assert not list(tmp_path.glob(".tmp-*"))
    assert load_checkpoint(tmp_path)["iteration"] == 1


def test_interrupted_save_folder_is_ignored_and_swept(tmp_path):
    save_checkpoint(tmp_path, 1, _state(1))
    stale = tmp_path / ".tmp-iter_000002-999"
    stale.mkdir()
    (stale / "state.pt").write_bytes(b"half")
    assert resolve_checkpoint(tmp_path).name == "iter_000001"
    save_checkpoint(tmp_path, 3, _state(3))
    assert not stale.exists()


def test_corrupt_file_is_reported_with_its_path(tmp_path):
    path = save_checkpoint(tmp_path, 7, _state(7))
    data = bytearray((path / "state.pt").read_bytes())
    data[-10] ^= 0xFF
    (path / "state.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"iter_000007/state.pt.*SHA-256"):
        load_checkpoint(path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        resolve_checkpoint(Path(tmp_path) / "nothing-here")


# ---- untrusted checkpoints: state.pt is loaded without running code ------------------------------


def test_the_payload_is_live_under_an_unrestricted_load(tmp_path):
    """The control: torch.load(weights_only=False), what this project used to call, runs it."""
    marker = tmp_path / "marker"
    torch.load(io.BytesIO(torch_saved({"x": RunsCode(marker)})), weights_only=False)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle", "nested_in_real_state"])
def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, container):
    marker = tmp_path / "marker"
    evil = RunsCode(marker)
    payload = {
        "torch_zip": lambda: torch_saved(evil),
        "raw_pickle": lambda: pickle.dumps({"iteration": 1, "learner": evil}, protocol=2),
        "nested_in_real_state": lambda: torch_saved({**_state(1), "learner": {"learner": [1, {"w": evil}]}}),
    }[container]()
    ckpt = forge_checkpoint(tmp_path / "run" / "checkpoints", payload)
    verify_checkpoint(ckpt)  # the manifest matches: integrity is no defence against its author
    with pytest.raises(UnsafeCheckpointError, match=r"iter_000001/state.pt: refused to load: it names exec"):
        load_checkpoint(tmp_path / "run")
    assert not marker.exists()


def test_a_state_that_is_not_a_dict_is_refused(tmp_path):
    ckpt = forge_checkpoint(tmp_path, torch_saved([1, 2, 3]))
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint state dict"):
        load_checkpoint(ckpt)


def test_every_type_the_trainer_writes_loads_back_exactly(tmp_path):
    """The trainer's state: numpy arrays of every dtype it uses (RLlib module state, runner snapshots),
    numpy scalars, the python/numpy/torch RNG states, bytes, tuples, OrderedDicts, None."""
    random.seed(3)
    np.random.seed(3)
    state = {
        "format": 2,
        "iteration": 7,
        "config_yaml": "a: 1\n",
        "rng": rng_state(),
        "none": None,
        "arrays": {
            str(dt): np.arange(6).astype(dt).reshape(2, 3)
            for dt in (np.float32, np.float64, np.int32, np.int64, np.uint8, np.uint32, np.bool_)
        },
        "scalars": [np.float64(1.5), np.int64(-2), np.float32(0.25), 3, 2.5, True, "s", b"\x00\x01", b""],
        "od": collections.OrderedDict(a=torch.ones(2, dtype=torch.float64), b=(1, 2.0, "x")),
        "generator": torch.Generator().manual_seed(5).get_state(),
    }
    got = load_checkpoint(save_checkpoint(tmp_path, 7, state))
    assert got.keys() == state.keys()
    for dt, arr in state["arrays"].items():
        assert got["arrays"][dt].dtype == arr.dtype and np.array_equal(got["arrays"][dt], arr)
    assert got["scalars"] == state["scalars"]
    assert [type(v) for v in got["scalars"]] == [type(v) for v in state["scalars"]]
    assert isinstance(got["od"], collections.OrderedDict) and got["od"]["b"] == (1, 2.0, "x")
    assert torch.equal(got["generator"], state["generator"])
    set_rng_state(got["rng"])  # the RNG states are usable as such
    assert random.random() == (random.seed(3) or random.random())


def test_resume_picks_the_newest_checkpoint_that_loads_and_says_why(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    for i in (1, 2, 3):
        save_checkpoint(root, i, _state(i))
    (root / "iter_000003" / "state.pt").write_bytes(b"torn")
    said = []
    ckpt, state = load_for_resume(tmp_path / "run", report=said.append)
    assert (ckpt.name, state["iteration"]) == ("iter_000002", 2)
    assert len(said) == 1 and "skipping iter_000003" in said[0] and "SHA-256" in said[0]
    with pytest.raises(CheckpointError, match="SHA-256"):  # a checkpoint named explicitly is never swapped
        load_for_resume(root / "iter_000003")


def test_resume_never_skips_past_an_unsafe_checkpoint(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    save_checkpoint(root, 1, _state(1))
    forge_checkpoint(root, torch_saved(RunsCode(tmp_path / "marker")), iteration=2)
    with pytest.raises(UnsafeCheckpointError):
        load_for_resume(tmp_path / "run", report=lambda _: None)
    assert not (tmp_path / "marker").exists()
