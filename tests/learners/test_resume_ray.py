"""Exact resume and determinism on a real local Ray, and the sampler aggregator actor.

Two env runners (each its own shard, RunnerState keyed by worker index) and the adaptive sampler,
so a resume has to bring back the env RNGs, the simulators, episode buffers, histories, sampler
counts, the aggregator's stats, the policy's sampling RNG and the learner's shuffling RNG.
"""

import numpy as np
import pytest

from sonic_ray.config import load_config
from sonic_ray.envs.sampler_stats import FailureStats
from sonic_ray.train.checkpoint import load_checkpoint
from sonic_ray.train.metrics import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.ray]

SMALL = [
    "+exp=smoke",
    "logging.wandb_mode=disabled",
    "env.num_envs=8",
    "algo.num_steps_per_env=6",
    "ray.num_env_runners=2",
    "env.commands.motion.sampler=adaptive",
    "callbacks.checkpoint_keep=0",
    "callbacks.plot_learning_curves=false",
    "env.episode_length_s=0.5",
    "actor_critic.init_noise_std=0.05",
]  # the demo/smoke noise is 0.3; 0.05 keeps episodes ending in iteration 4


def _run(run_dir, *overrides):
    from sonic_ray.train.driver import Trainer

    tr = Trainer(load_config([*SMALL, f"run_dir={run_dir}", *overrides]))
    try:
        tr.run()
        summary = __import__("ray").get(tr.algo.sampler_stats.summary.remote())
    finally:
        tr.close()
    return {r["iteration"]: r for r in read_metrics(run_dir / "metrics.jsonl")}, summary


def _comparable(row: dict) -> dict:
    """Everything but wall-clock figures."""
    return {k: v for k, v in row.items() if not k.startswith("perf/") and k != "time"}


@pytest.fixture(scope="module")
def uninterrupted(local_ray, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "a"
    rows, summary = _run(run_dir, "algo.max_iterations=4", "algo.save_interval=2")
    return run_dir, rows, summary


def test_resumed_run_matches_the_uninterrupted_one_exactly(uninterrupted, tmp_path):
    run_dir, rows, _ = uninterrupted
    resumed, _ = _run(
        tmp_path / "b",
        f"resume={run_dir / 'checkpoints' / 'iter_000002'}",
        "algo.max_iterations=4",
        "algo.save_interval=100",
    )
    assert sorted(resumed) == [3, 4]
    assert "loss/total" in rows[3] and rows[4]["env/episodes"] > 0  # the rows carry losses and episodes
    saved = load_checkpoint(run_dir / "checkpoints" / "iter_000002")
    assert sorted(saved["algo"]["runners"]) == [1, 2]  # one RunnerState per env runner, by worker index
    for it in (3, 4):
        want, got = _comparable(rows[it]), _comparable(resumed[it])
        assert want.keys() == got.keys(), it
        diff = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
        assert not diff, f"iteration {it} differs after resume: {diff}"


def test_same_seed_twice_gives_the_same_metrics(uninterrupted, tmp_path):
    _, rows, _ = uninterrupted
    again, _ = _run(tmp_path / "c", "algo.max_iterations=2", "algo.save_interval=100")
    for it in (1, 2):
        want, got = _comparable(rows[it]), _comparable(again[it])
        diff = {k: (want[k], got[k]) for k in set(want) | set(got) if want.get(k) != got.get(k)}
        assert not diff, f"iteration {it} differs between two runs with seed 0: {diff}"


def test_adaptive_sampler_metrics_and_aggregator(uninterrupted):
    _, rows, summary = uninterrupted
    assert summary["updates"] == 4 and summary["seen_bins"] > 0
    for it in range(1, 5):
        assert 0.0 < rows[it]["sampler/entropy"] <= 1.0
    assert 0.0 < summary["failure_rate_mean"] <= 1.0  # failures / visits over the seen bins (0.8 here)


def test_aggregator_actor_pools_runner_reports(local_ray):
    from sonic_ray.env_runners.sampler_actor import SamplerStatsActor

    actor = SamplerStatsActor.remote(FailureStats(6, smoothing=0.5, cap_multiple=2.0))
    a = {
        "bins": np.array([0, 1]),
        "visits": np.array([4, 2]),
        "failures": np.array([0, 2]),
    }  # runner 1's shard
    b = {"bins": np.array([4]), "visits": np.array([5]), "failures": np.array([1])}  # runner 2's shard
    rates = local_ray.get(actor.update.remote([a, b]))
    ref = FailureStats(6, smoothing=0.5, cap_multiple=2.0)
    ref.update([a, b])
    np.testing.assert_array_equal(rates, ref.rates())
    # rates [0, 1, -, -, 0.2, -]: mean of visited 0.4, cap 0.8
    np.testing.assert_allclose(rates, [0.0, 0.8, 0.0, 0.0, 0.2, 0.0], rtol=1e-6)
    state = local_ray.get(actor.get_state.remote())
    other = SamplerStatsActor.remote(FailureStats(6, smoothing=0.5, cap_multiple=2.0))
    np.testing.assert_array_equal(local_ray.get(other.set_state.remote(state)), rates)
    with pytest.raises(Exception, match="different store or bin size"):
        local_ray.get(
            actor.update.remote([{"bins": np.array([6]), "visits": np.array([1]), "failures": np.array([0])}])
        )
    for x in (actor, other):
        local_ray.kill(x)
