"""Which learner takes which runner's rollouts, and how to place them so that bulk data stays on a node.

With `ray.colocate` each learner takes the *whole* rollouts of its runners (no split across
learners), and its runners are, wherever the cluster allows, on its own node: a rollout then moves
through that node's shared-memory object store and only gradients (DDP all-reduce) and weights
cross the network. Placement: `node_bundles` gives one placement-group bundle per node (a learner
plus its runners, STRICT_SPREAD across nodes); on clusters laid out by hand or by KubeRay the same
layout comes from per-node custom resources. Routing (`assign_runners`) reads the nodes the actors
actually run on, so it is right whatever placed them. Ray-free: plain node-id strings in and out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def assign_runners(runner_nodes: Mapping[int, str], learner_nodes: Sequence[str]) -> list[list[int]] | None:
    """Runners (worker index -> node id) to learners (index -> node id), every learner taking the
    same number of runners (DDP steps in lockstep); runners on a learner's node go to it first, the
    rest fill the learners still short. -> one sorted list of worker indices per learner, or None when
    the runners cannot be shared out evenly (then rollouts are split across learners instead)."""
    L = len(learner_nodes)
    if L == 0 or not runner_nodes or len(runner_nodes) % L:
        return None
    quota = len(runner_nodes) // L
    out: list[list[int]] = [[] for _ in range(L)]
    left = []
    for idx in sorted(runner_nodes):
        node = runner_nodes[idx]
        # the learner on this runner's node with the fewest runners so far that still has room
        mine = [i for i, n in enumerate(learner_nodes) if n == node and len(out[i]) < quota]
        if mine:
            out[min(mine, key=lambda i: len(out[i]))].append(idx)
        else:
            left.append(idx)
    for idx in left:
        out[min((i for i in range(L) if len(out[i]) < quota), key=lambda i: len(out[i]))].append(idx)
    return [sorted(x) for x in out]


def learner_major_refs(assignment: list[list[int]], refs_by_runner: Mapping[int, object]) -> list:
    """One whole-rollout ref per runner, ordered learner by learner: RLlib's LearnerGroup hands
    learner i the i-th contiguous, equal chunk of `batch_refs`."""
    return [refs_by_runner[idx] for runners in assignment for idx in runners]


def cross_node_bytes(
    assignment: list[list[int]],
    runner_nodes: Mapping[int, str],
    learner_nodes: Sequence[str],
    bytes_by_runner: Mapping[int, int],
) -> int:
    """Bytes that leave their node under `assignment` (what the learners' counters measure)."""
    return sum(
        bytes_by_runner[r]
        for i, rs in enumerate(assignment)
        for r in rs
        if runner_nodes[r] != learner_nodes[i]
    )


def node_bundles(
    *,
    num_learners: int,
    runners_per_learner: int,
    cpus_per_runner: float,
    cpus_per_learner: float,
    gpus_per_learner: float = 0.0,
    gpus_per_runner: float = 0.0,
) -> list[dict[str, float]]:
    """One placement-group bundle per learner node: the learner and the runners that feed it
    (use with strategy STRICT_SPREAD, one node per bundle)."""
    bundle = {"CPU": cpus_per_learner + runners_per_learner * cpus_per_runner}
    gpus = gpus_per_learner + runners_per_learner * gpus_per_runner
    if gpus:
        bundle["GPU"] = gpus
    return [dict(bundle) for _ in range(max(num_learners, 1))]
