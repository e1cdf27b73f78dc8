"""The pipeline bench's JSON on a tiny real run (local Ray started and stopped by the bench)."""

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_pipeline_bench_json_shape():
    from sonic_ray.bench.pipeline import naive_bytes_per_transition, run

    out = json.loads(json.dumps(run(num_envs=4, num_steps=4, warmup=1, iterations=1)))
    for name, runners in (("inprocess", 1), ("ray_1", 1), ("ray_1_demo_threads", 1), ("ray_2", 2)):
        r = out[name]
        assert r["env_steps"] == 4 * 4 * runners
        assert r["env_steps_per_s"] > 0 and r["sample_steps_per_s"] > 0
        assert {"sample", "learn", "other"} <= set(r["phase_s"])
    assert "sync" in out["ray_1"]["phase_s"] and {"runner_sample", "runner_put"} <= set(
        out["ray_1"]["runner_phase_s"]
    )
    for key in ("ray_over_inprocess", "ray_over_inprocess_demo_threads", "scale_2_runners_over_1"):
        assert out[key] > 0
    # equal threads on both sides; the demo preset's own learner threads reported beside them
    assert out["meta"]["learner_threads"] == out["meta"]["torch_threads"] == 1
    assert out["meta"]["demo_learner_threads"] == 2 and out["ray_1_demo_threads"] != out["ray_1"]
    # naive: one float32 copy of every observation group; the shipped batch adds actions, logp, mean,
    # rewards, flags and (amortised over T = 4 steps here) the last critic obs, and saves 3 bytes on the
    # int8 encoder index
    naive = naive_bytes_per_transition(out["obs_dims"])
    assert out["naive_bytes_per_transition"] == naive == 4 * sum(out["obs_dims"].values())
    # (the full format, measured by bench/rollout_bytes at the demo layout: T = 24, so within this bound)
    extra = 4 * (2 * out["action_dim"] + 2) + 4 * out["obs_dims"]["critic"] / 4 + 64
    assert naive < out["bytes_per_transition_full"] < naive + extra
    # the runs above ship the default compact format: under one copy of the observations even with
    # its per-rollout parts (first history, bootstrap row) amortised over only 4 x 4 transitions
    assert out["bytes_per_transition"] < naive
    # the demo layout (no proprioception history since 2026-12-03) 0.126, the release layout under 1/8
    assert out["bytes_per_transition_compact"] < 0.13 * out["bytes_per_transition_full"]
    assert out["compact_over_full"] <= 0.13 and out["release_compact_over_full"] <= 0.125
