"""The learner bench's JSON on a tiny real run (probed obs dims; ours, the RLlib learner and rsl_rl on the
same batch)."""

import json

import pytest
import torch

pytestmark = pytest.mark.slow


def test_learner_bench_json_shape():
    pytest.importorskip("rsl_rl")
    from sonic_ray.bench.learner import run

    out = json.loads(json.dumps(run(sizes=("demo",), num_envs={"demo": 4}, num_steps=4, repeats=1)))
    e = out["demo"]
    assert e["rows"] == 16 and out["meta"]["obs_dims"]["policy"] > 0
    for side in ("ours", "rsl_rl"):
        assert (
            e[side]["samples_per_s"] > 0 and e[side]["macs_per_row"] > 0 and len(e[side]["seconds_all"]) == 1
        )
    assert e["over_rsl_rl"] == pytest.approx(e["ours"]["samples_per_s"] / e["rsl_rl"]["samples_per_s"])
    assert e["ours"]["macs_per_row"] > e["rsl_rl"]["macs_per_row"]  # the encoders and aux paths cost more
    assert e["rllib"]["samples_per_s"] > 0 and len(e["rllib"]["seconds_all"]) == 1
    assert e["rllib_over_ours"] == pytest.approx(e["rllib"]["samples_per_s"] / e["ours"]["samples_per_s"])
    assert e["rllib_over_rsl_rl"] == pytest.approx(e["rllib"]["samples_per_s"] / e["rsl_rl"]["samples_per_s"])
    assert torch.get_num_threads() == 1  # the RLlib learner's build did not leave its own threads set
