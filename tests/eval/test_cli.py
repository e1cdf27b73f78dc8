"""`sonic-ray eval` / `monitor` input errors: clear messages, no traceback."""

from sonic_ray.cli import main


def test_eval_of_a_missing_checkpoint_says_so(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "nothing")]) == 1
    assert "no complete checkpoint" in capsys.readouterr().err


def test_monitor_of_a_missing_run_dir_says_so(tmp_path, capsys):
    assert main(["monitor", "--experiment-dir", str(tmp_path / "nope"), "--run-once"]) == 1
    assert "experiment directory not found" in capsys.readouterr().err


def test_monitor_every_n_must_be_positive(tmp_path, capsys):
    assert main(["monitor", "--experiment-dir", str(tmp_path), "--every-n", "0", "--run-once"]) == 1
    assert "--every-n must be >= 1" in capsys.readouterr().err


def test_monitor_with_no_checkpoints_yet_does_nothing(tmp_path):
    assert main(["monitor", "--experiment-dir", str(tmp_path), "--run-once", "--no-wandb"]) == 0
    assert not (tmp_path / "eval").exists()
