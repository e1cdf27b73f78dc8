import os
from pathlib import Path

import pytest
import torch

from sonic_ray.train.checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)


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
