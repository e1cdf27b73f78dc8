"""Distributed training on a real local Ray: smoke run, checkpoint, resume, runner failure, DDP."""

import os
import signal

import pytest
import torch

from sonic_ray.config import load_config
from sonic_ray.train.checkpoint import list_checkpoints, load_checkpoint
from sonic_ray.train.metrics import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.ray]

SMALL = ["+exp=smoke", "logging.wandb_mode=disabled", "env.num_envs=8", "algo.num_steps_per_env=6"]


def _trainer(tmp_path, *overrides):
    from sonic_ray.train.driver import Trainer

    return Trainer(load_config([*SMALL, f"run_dir={tmp_path}", *overrides]))


def _weights(trainer):
    state = trainer.algo.learner_group.get_state(components="learner/rl_module")
    return state["learner"]["rl_module"]["default_policy"]


def test_smoke_run_checkpoints_and_resume_continues(local_ray, tmp_path):
    tr = _trainer(tmp_path / "run", "algo.max_iterations=2", "algo.save_interval=2")
    try:
        last = tr.run()
        saved = _weights(tr)
    finally:
        tr.close()
    assert last["iteration"] == 2 and last["perf/env_steps"] == 8 * 6
    ckpts = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in ckpts] == ["iter_000002"]
    state = load_checkpoint(tmp_path / "run")
    assert state["iteration"] == 2 and "optimizer" in state["learner"]["learner"]
    assert (tmp_path / "run" / "learning_curves.png").stat().st_size > 0

    tr2 = _trainer(
        tmp_path / "run", f"resume={tmp_path / 'run'}", "algo.max_iterations=3", "algo.save_interval=100"
    )
    try:
        assert tr2.iteration == 2
        for key, value in saved.items():
            torch.testing.assert_close(torch.as_tensor(_weights(tr2)[key]), torch.as_tensor(value), msg=key)
        last = tr2.run()
    finally:
        tr2.close()
    assert last["iteration"] == 3
    assert [r["iteration"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3]
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == [
        "iter_000002",
        "iter_000003",
    ]


def test_killed_env_runner_is_replaced(local_ray, tmp_path):
    """SIGKILL one of two runners: every later iteration still completes (on the survivor), and
    RLlib's restart brings a new process back into service. A restart takes a few iterations when
    the machine is loaded, so the test steps until both runners are healthy (at most 12 more)."""
    tr = _trainer(tmp_path, "algo.max_iterations=20", "ray.num_env_runners=2")
    try:
        tr.step()
        pids = tr.algo.env_runner_group.foreach_env_runner(lambda r: os.getpid(), local_env_runner=False)
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        rows = [tr.step()]
        while rows[-1]["perf/num_healthy_runners"] < 2 and len(rows) < 12:
            rows.append(tr.step())
        rows.append(tr.step())  # an iteration sampled by both runners after the restart
        pids_after = tr.algo.env_runner_group.foreach_env_runner(
            lambda r: os.getpid(), local_env_runner=False
        )
    finally:
        tr.close()
    assert [r["iteration"] for r in rows] == list(range(2, 2 + len(rows)))  # no iteration was lost
    assert all(r["perf/env_steps"] > 0 for r in rows)
    assert rows[-1]["perf/num_healthy_runners"] == 2
    assert pids[0] not in pids_after and len(pids_after) == 2


def test_two_learners_train_data_parallel(local_ray, tmp_path):
    tr = _trainer(
        tmp_path,
        "algo.max_iterations=1",
        "ray.num_learners=2",
        "ray.cpus_per_learner=1",
        "ray.num_env_runners=1",
    )
    try:
        row = tr.step()
        states = tr.algo.learner_group.foreach_learner(
            lambda learner: {
                k: v.detach().clone() for k, v in learner.module["default_policy"].state_dict().items()
            }
        )
    finally:
        tr.close()
    assert row["learner/rows"] == 8 * 6 / 2  # each learner got half the envs
    a, b = [s.get() for s in states]
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)  # DDP kept the replicas identical


def test_learner_failure_stops_with_a_clear_message_and_a_loadable_checkpoint(local_ray, tmp_path):
    from sonic_ray.train.driver import TrainingStopped

    tr = _trainer(tmp_path, "algo.max_iterations=3", "algo.save_interval=1", "ray.num_learners=1")
    try:
        tr.step()
        tr.save()
        learner_actor = tr.algo.learner_group._worker_manager.actors()[0]
        local_ray.kill(learner_actor, no_restart=True)
        with pytest.raises(TrainingStopped, match=r"iteration 2 .*last complete checkpoint: .*iter_000001"):
            tr.run()
    finally:
        tr.close()
    assert load_checkpoint(tmp_path)["iteration"] == 1
