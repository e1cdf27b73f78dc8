"""Evaluation of real checkpoints: a smoke training run on a real local Ray (evaluating itself
every iteration in background tasks), then `sonic-ray eval`, Ray fan-out and the monitor."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from eval_builders import small_config, small_store

from sonic_ray.cli import main
from sonic_ray.train.checkpoint import list_checkpoints, load_checkpoint
from sonic_ray.train.metrics import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Two iterations, a checkpoint and a background evaluation (with one video) after each."""
    import ray

    from sonic_ray.train.driver import Trainer

    os.environ.setdefault("WANDB_SILENT", "true")
    root = tmp_path_factory.mktemp("smoke")
    store = small_store(root)
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
    )
    cfg = small_config(
        store,
        f"run_dir={root / 'run'}",
        "logging.wandb_mode=offline",
        "algo.max_iterations=2",
        "algo.save_interval=100",
        "callbacks.eval_interval=1",
        "callbacks.eval_num_envs=2",
        "callbacks.eval_render=1",
        "callbacks.checkpoint_keep=0",
    )
    trainer = Trainer(cfg)
    try:
        trainer.run()
    finally:
        trainer.close()
    yield root / "run"
    ray.shutdown()


def _frames(path):
    import imageio.v2 as imageio

    return [np.asarray(f) for f in imageio.get_reader(path)]


def test_training_evaluates_in_background_and_logs_eval_keys(smoke_run):
    assert [p.name for p in list_checkpoints(smoke_run / "checkpoints")] == ["iter_000001", "iter_000002"]
    rows = read_metrics(smoke_run / "metrics.jsonl")
    evaluated = sorted(r["eval/iteration"] for r in rows if "eval/iteration" in r)
    assert evaluated == [1, 2]  # both results arrived: during training or drained at its end
    last = [r for r in rows if r.get("eval/iteration") == 2][-1]
    assert 0.0 <= last["eval/success_rate"] <= 1.0 and last["eval/num_clips"] == 4
    for it in (1, 2):
        out = smoke_run / "eval" / f"iter_{it:06d}"
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["iteration"] == it and metrics["num_clips"] == 4
        assert len(list((out / "videos").glob("*.mp4"))) == 1 and (out / "report.html").is_file()


def test_load_policy_matches_the_learner_weights(smoke_run):
    from sonic_ray.eval.policy import load_policy, model_kwargs_for, module_weights

    state = load_checkpoint(smoke_run)
    cfg, ac = load_policy(smoke_run)
    assert state["model_kwargs"] == model_kwargs_for(cfg)  # saved sizes = sizes probed from the config
    for key, value in module_weights(state).items():
        torch.testing.assert_close(ac.state_dict()[key], value.to(ac.state_dict()[key].dtype), msg=key)
    assert not ac.training


def test_cli_eval_writes_all_outputs_with_a_real_video(smoke_run, tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(smoke_run),
                "--out",
                str(out),
                "--render",
                "2",
                "--no-progress",
                "--max-tasks",
                "1",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_clips"] == 4 and metrics["iteration"] == 2 and metrics["render_fps"] > 0
    import pyarrow.parquet as pq

    # each clip by the policy, then by the blind control (callbacks.eval_blind: the token zeroed)
    table = pq.read_table(out / "clips.parquet").to_pydict()
    assert sorted(table["encoder"]) == ["blind"] * 4 + ["g1"] * 4
    assert metrics["per_encoder"]["blind"]["num_clips"] == 4 and "token_gain_completed" in metrics
    videos = sorted((out / "videos").glob("*.mp4"))
    assert len(videos) == 2 and "videos/" + videos[0].name in (out / "report.html").read_text()
    frames = _frames(videos[0])
    assert len(frames) >= 1
    assert all(f.reshape(-1, 3).std(axis=0).max() > 10 for f in frames)  # not blank, not one colour
    assert str(out) in capsys.readouterr().out


def test_ray_fan_out_evaluates_each_clip_once(smoke_run, tmp_path):
    out = tmp_path / "fan"
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(smoke_run / "checkpoints" / "iter_000001"),
                "--out",
                str(out),
                "--no-progress",
                "--max-tasks",
                "3",
                "callbacks.eval_clips_per_task=1",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_tasks"] == 3 and metrics["iteration"] == 1
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "clips.parquet").to_pylist()
    # every clip once by the policy and once by the blind control, whichever task held it
    for enc in ("g1", "blind"):
        assert sorted(r["clip_index"] for r in rows if r["encoder"] == enc) == [0, 1, 2, 3]


def _copy_run(smoke_run, dst):
    shutil.copytree(smoke_run / "checkpoints", dst / "checkpoints")
    shutil.copy(smoke_run / "wandb_run_id", dst / "wandb_run_id")
    return dst


def test_monitor_skips_corrupt_checkpoints_and_never_redoes_work(smoke_run, tmp_path, capsys):
    from sonic_ray.eval.monitor import Monitor

    run = _copy_run(smoke_run, tmp_path / "run")
    state_pt = run / "checkpoints" / "iter_000002" / "state.pt"
    data = bytearray(state_pt.read_bytes())
    data[-20] ^= 0xFF
    state_pt.write_bytes(bytes(data))
    assert Monitor(run, progress=False, render=1).run_once() == [1]
    err = capsys.readouterr().err
    assert "iter_000002" in err and "corrupt or incomplete checkpoint" in err and "SHA-256" in err
    assert "W&B logging failed" not in err
    done = run / "eval" / "iter_000001" / "metrics.json"
    stamp = done.stat().st_mtime_ns
    assert len(list((run / "eval" / "iter_000001" / "videos").glob("*.mp4"))) == 1
    state = json.loads((run / "eval" / "monitor_state.json").read_text())
    assert state["seen"] == [1, 2] and list(state["evaluated"]) == ["1"] and "SHA-256" in state["failed"]["2"]
    # W&B: logged to the training run's id (offline files of that run under run/wandb)
    run_id = (run / "wandb_run_id").read_text().strip()
    assert list((run / "wandb").glob(f"offline-run-*-{run_id}"))

    # A restart does nothing twice; a new checkpoint is the only work.
    assert Monitor(run, progress=False).run_once() == []
    shutil.copytree(run / "checkpoints" / "iter_000001", run / "checkpoints" / "iter_000003")
    assert main(["monitor", "--experiment-dir", str(run), "--run-once", "--no-progress", "--no-wandb"]) == 0
    assert done.stat().st_mtime_ns == stamp
    assert (run / "eval" / "iter_000003" / "metrics.json").is_file()
    assert json.loads((run / "eval" / "monitor_state.json").read_text())["seen"] == [1, 2, 3]


def test_monitor_every_n(smoke_run, tmp_path):
    from sonic_ray.eval.monitor import Monitor

    run = _copy_run(smoke_run, tmp_path / "run")
    shutil.copytree(run / "checkpoints" / "iter_000001", run / "checkpoints" / "iter_000003")
    assert Monitor(run, progress=False, every_n=2, wandb=False).run_once() == [1, 3]
    state = json.loads((run / "eval" / "monitor_state.json").read_text())
    assert state["skipped"] == [2] and not (run / "eval" / "iter_000002").exists()
