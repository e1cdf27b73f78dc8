"""The learning bench end to end at a tiny budget: 2 seeds of the smoke preset through the Ray
trainer with evaluation tasks, the zero-action baseline, the JSON file and the PNG."""

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_learning_bench_tiny_run(tmp_path):
    from sonic_ray.bench.learning import run

    out = run(
        exp="smoke",
        seeds=(0, 1),
        env_steps=256,
        eval_every_steps=128,
        zero_action_steps=60,
        marks=(128, 256, 10_000),
        out_dir=tmp_path,
        progress=False,
    )
    saved = json.loads((tmp_path / "learning.json").read_text())
    assert saved["meta"] == out["meta"] and saved["summary"].keys() == {"128", "256"}
    assert (tmp_path / "learning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    meta = saved["meta"]
    sizes = (meta["steps_per_iteration"], meta["eval_interval_iterations"], meta["max_iterations"])
    assert sizes == (128, 1, 2)
    assert meta["git"]["commit"] and meta["machine"]["cpu_count"] >= 1
    assert "callbacks.eval_interval=1" in meta["overrides"] and meta["store"].endswith(".parquet")

    zero = saved["zero_action"]
    assert 0.0 < zero["completed_mean"] < 1.0 and zero["success_rate"] == 0.0  # it falls on every clip
    assert zero["num_clips"] > 0 and zero["mpjpe_l_mm_all"] > 0
    assert set(zero["train_per_seed"]) == {"0", "1"}
    assert all(z["episodes"] > 0 and z["env_steps"] == 60 * 16 for z in zero["train_per_seed"].values())
    assert 10 < zero["episode_length"] < 50  # the G1 falls in ~0.6 s under the training terminations

    for seed in ("0", "1"):
        r = saved["seeds"][seed]
        assert r["error"] is None and r["iterations"] == 2 and r["env_steps"] == 256
        assert r["missing_evals"] == []  # the last checkpoint's evaluation was awaited and logged
        assert [p["env_steps"] for p in r["curve"]] == [128, 256]
        for p in r["curve"]:
            assert 0.0 < p["completed_mean"] < 1.0 and p["success_rate"] is not None
            assert p["mpjpe_l_mm_all"] > 0 and p["episode_length"] > 0 and p["wall_s"] > 0
        assert (tmp_path / f"seed_{seed}" / "metrics.jsonl").exists()
    completed = {s: [p["completed_mean"] for p in saved["seeds"][s]["curve"]] for s in ("0", "1")}
    assert completed["0"] != completed["1"]  # two seeds, two different policies

    last = saved["summary"]["256"]
    assert last["num_seeds"] == 2 and set(last["per_seed"]) == {"0", "1"}
    assert last["completed_mean"] == pytest.approx(
        sum(saved["seeds"][s]["curve"][-1]["completed_mean"] for s in ("0", "1")) / 2
    )
    for key in ("completed_mean", "episode_length"):
        assert last["over_zero_action"][key] == pytest.approx(last[key] - zero[key])
