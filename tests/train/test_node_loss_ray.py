"""A worker node lost mid-run on a real multi-node Ray (two `ray start` nodes on loopback): the run
goes on, the lost runner is replaced on the head, and once the node rejoins the next run uses it.
The scenario is `sonic-ray bench faults --only node_loss`'s, so the bench and this test agree.
Takes 6-7 minutes on the shared 2-core machine under load 7-8 (two runs' startup, a runner
restarted in a new process, a node joining twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_a_lost_node_is_replaced_on_the_head_and_a_rejoined_node_is_used(tmp_path):
    from sonic_ray.bench.faults import node_loss
    from sonic_ray.config import load_config
    from sonic_ray.motion.default_store import ensure_synth_store

    store = ensure_synth_store(REPO / load_config([]).motions.synth_cache)
    r = node_loss(tmp_path, store)
    assert r["runner_nodes_before"] == ["head", "second"], r
    assert r["runner_nodes_after"] == ["head", "head"], r
    assert r["next_run_uses_rejoined_node"], r
    assert r["recovered"] and r["iterations_lost"] == 0 and not r["data_lost"], r
