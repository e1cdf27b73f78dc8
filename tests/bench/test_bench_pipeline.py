"""The pipeline bench's JSON on a tiny real run (local Ray started and stopped by the bench)."""

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_pipeline_bench_json_shape():
    from sonic_ray.bench.pipeline import naive_bytes_per_transition, run

    out = json.loads(json.dumps(run(num_envs=4, num_steps=4, warmup=1, iterations=1)))
    for name, runners in (("inprocess", 1), ("ray_1", 1), ("ray_2", 2)):
        r = out[name]
        assert r["env_steps"] == 4 * 4 * runners
        assert r["env_steps_per_s"] > 0 and r["sample_steps_per_s"] > 0
        assert {"sample", "learn", "other"} <= set(r["phase_s"])
    assert "sync" in out["ray_1"]["phase_s"] and {"runner_sample", "runner_put"} <= set(out["ray_1"]["runner_phase_s"])
    for key in ("ray_over_inprocess", "scale_2_runners_over_1"):
        assert out[key] > 0
    assert out["naive_bytes_per_transition"] == naive_bytes_per_transition(out["obs_dims"], out["action_dim"])
    assert 0 < out["bytes_per_transition"] < out["naive_bytes_per_transition"]
