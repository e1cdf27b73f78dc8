"""Every command that reads a checkpoint or a store, handed a hostile or broken one: one line naming
the file, a non-zero exit, no traceback, no code run, nothing written into the run dir, no Ray."""

from __future__ import annotations

import pytest
from checkpoint_builders import RunsCode, forge_checkpoint, torch_saved

from sonic_ray.cli import main
from sonic_ray.train.checkpoint import save_checkpoint
from sonic_ray.train.driver import _run_dir_of


@pytest.fixture()
def crafted(tmp_path):
    """A run dir whose only checkpoint runs code when unpickled without restriction."""
    marker = tmp_path / "marker"
    payload = torch_saved({"iteration": 1, "x": RunsCode(marker)})
    ckpt = forge_checkpoint(tmp_path / "run" / "checkpoints", payload)
    yield ckpt
    assert not marker.exists(), "the checkpoint's code ran"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--checkpoint", "{ckpt}"],
        ["export", "--checkpoint", "{ckpt}", "--out", "{tmp}/onnx"],
        ["train", "resume={ckpt}", "run_dir={tmp}/resumed"],
        ["train", "resume={run}"],
    ],
)
def test_crafted_checkpoint_is_refused_by_every_command(crafted, tmp_path, capsys, argv):
    fill = {"ckpt": crafted, "run": crafted.parents[1], "tmp": tmp_path}
    assert main([a.format(**fill) for a in argv]) == 1
    assert "refused to load: it names exec" in _one_line_error(capsys)
    assert not (tmp_path / "resumed").exists() and not (tmp_path / "onnx").exists()
    assert not (crafted.parents[1] / "config.yaml").exists()  # resume wrote nothing before refusing


def test_monitor_reports_a_crafted_checkpoint_and_keeps_watching(crafted, capsys):
    assert main(["monitor", "--experiment-dir", str(crafted.parents[1]), "--run-once", "--no-wandb"]) == 0
    assert "unsafe checkpoint refused, skipped" in capsys.readouterr().err


def test_failed_resume_leaves_the_run_dir_as_it_was(tmp_path, capsys):
    run = tmp_path / "run"
    ckpt = save_checkpoint(run / "checkpoints", 4, {"iteration": 4})
    (ckpt / "state.pt").write_bytes(b"torn")
    (run / "config.yaml").write_text("the run's own config\n")
    assert main(["train", f"resume={ckpt}"]) == 1
    assert "SHA-256 differs from the manifest" in _one_line_error(capsys)
    assert (run / "config.yaml").read_text() == "the run's own config\n"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml"]


def test_a_missing_store_fails_before_ray_starts(tmp_path, capsys):
    argv = ["train", f"motions.store={tmp_path / 'absent.parquet'}", f"run_dir={tmp_path / 'run'}"]
    assert main(argv) == 1
    err = _one_line_error(capsys)
    assert "motions.store:" in err and "absent.parquet: no such motion store" in err
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_outside_a_run_never_names_its_grandparent_as_the_run(tmp_path):
    assert _run_dir_of(tmp_path / "run" / "checkpoints" / "iter_000002") == tmp_path / "run"
    assert _run_dir_of(tmp_path / "downloads" / "iter_000002") is None  # a fresh run dir is made instead
