"""The learning bench's arithmetic on hand-made metrics.jsonl rows (no env, no Ray)."""

import pytest

from sonic_ray.bench.learning_report import (
    mark_label,
    mean_curve,
    over_zero_action,
    schedule,
    seed_curve,
    summary_at,
)


def test_schedule_rounds_up_to_whole_evaluated_intervals():
    # demo: 128 envs x 24 steps = 3,072 per iteration; 250k -> ceil(81.4) = 82 iterations per
    # checkpoint (251,904 steps); 1M -> ceil(1e6 / 251,904) = 4 checkpoints = 328 iterations.
    assert schedule(3072, 1_000_000, 250_000) == (82, 328)
    assert 328 * 3072 >= 1_000_000 and 2 * 82 * 3072 >= 500_000
    assert schedule(128, 256, 128) == (1, 2)
    assert schedule(100, 50, 1000) == (10, 10)  # the budget is below one interval: one checkpoint
    with pytest.raises(ValueError):
        schedule(0, 100, 10)


def _rows():
    """A run of 4 iterations of 100 env steps, evaluated every 2: iteration 2's evaluation lands on
    iteration 3's row, iteration 4's on a row the driver writes after training (same iteration)."""
    ep = {1: 10.0, 2: 20.0, 3: 30.0, 4: 50.0}
    rows = [
        {"iteration": i, "time": 1000.0 + 10 * i, "perf/env_steps": 100, "env/episode_length": ep[i]}
        for i in range(1, 5)
    ]
    rows[2].update(
        {
            "eval/iteration": 2,
            "eval/completed_mean": 0.2,
            "eval/success_rate": 0.0,
            "eval/mpjpe_l_mm_all": 40.0,
        }
    )
    rows.append(
        {
            "iteration": 4,
            "time": 1055.0,
            "eval/iteration": 4,
            "eval/completed_mean": 0.5,
            "eval/success_rate": 0.25,
            "eval/mpjpe_l_mm_all": 30.0,
        }
    )
    rows.append({"iteration": 4, "time": 1056.0, "eval/iteration": 6, "eval/failures": 1})  # failed: ignored
    return rows


def test_seed_curve_matches_evaluations_by_iteration_and_windows_episode_length():
    curve = seed_curve(_rows(), eval_interval=2, window=10, t0=1000.0)
    assert [p["iteration"] for p in curve] == [2, 4]
    p2, p4 = curve
    assert p2["env_steps"] == 200 and p4["env_steps"] == 400
    assert p2["wall_s"] == 20.0 and p4["wall_s"] == 40.0
    assert p4["env_steps_per_s"] == 10.0
    # window 10 is capped at the interval (2): iterations 1-2 and 3-4
    assert p2["episode_length"] == 15.0 and p4["episode_length"] == 40.0
    assert (p2["completed_mean"], p2["success_rate"], p2["mpjpe_l_mm_all"]) == (0.2, 0.0, 40.0)
    assert (p4["completed_mean"], p4["success_rate"], p4["mpjpe_l_mm_all"]) == (0.5, 0.25, 30.0)
    # window 1: the checkpoint's own iteration only
    one = seed_curve(_rows(), eval_interval=2, window=1, t0=1000.0)
    assert [p["episode_length"] for p in one] == [20.0, 50.0]


def test_seed_curve_leaves_a_missing_evaluation_none():
    rows = [r for r in _rows() if r.get("eval/iteration") != 4]
    p4 = seed_curve(rows, eval_interval=2, window=2, t0=1000.0)[-1]
    assert p4["iteration"] == 4 and p4["completed_mean"] is None and p4["episode_length"] == 40.0


def test_mean_summary_and_deltas_over_zero_action():
    a = seed_curve(_rows(), eval_interval=2, window=2, t0=1000.0)
    b = [
        dict(p, episode_length=p["episode_length"] + 10, completed_mean=None if p["iteration"] == 2 else 0.7)
        for p in a
    ]
    mean = mean_curve([a, b])
    assert [p["num_seeds"] for p in mean] == [2, 2]
    assert mean[0]["episode_length"] == 20.0 and mean[1]["episode_length"] == 45.0
    assert mean[0]["completed_mean"] == 0.2  # the seed without it is skipped
    assert mean[1]["completed_mean"] == pytest.approx(0.6) and mean[1]["env_steps"] == 400
    zero = {"episode_length": 30.0, "completed_mean": 0.15, "success_rate": 0.0, "mpjpe_l_mm_all": 50.0}
    d = over_zero_action(mean[1], zero)
    assert d["episode_length"] == 15.0 and d["completed_mean"] == pytest.approx(0.45)
    assert d["success_rate"] == 0.25 and d["mpjpe_l_mm_all"] == -20.0
    assert over_zero_action({"episode_length": None}, zero)["episode_length"] is None

    summary = summary_at({"0": a, "1": b}, mean, zero, marks=(150, 400, 1000))
    assert list(summary) == ["150", "400"]  # 1000 is not reached; 150 -> the first point past it (200)
    assert summary["150"]["env_steps"] == 200 and summary["400"]["iteration"] == 4
    assert summary["400"]["per_seed"]["1"]["episode_length"] == 50.0
    assert summary["400"]["over_zero_action"] == d


def test_mark_labels():
    labels = [mark_label(s) for s in (500_000, 1_000_000, 250_000, 2_500_000, 512)]
    assert labels == ["0.5M", "1M", "250k", "2.5M", "512"]
