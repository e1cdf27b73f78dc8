"""Routing of rollouts to learners under ray.colocate, without a cluster (node ids as strings)."""

from sonic_ray.env_runners.routing import assign_runners, cross_node_bytes, learner_major_refs, node_bundles


def test_each_learner_takes_the_runners_on_its_node():
    runners = {1: "b", 2: "a", 3: "b", 4: "a"}
    learners = ["a", "b"]
    got = assign_runners(runners, learners)
    assert got == [[2, 4], [1, 3]]
    assert cross_node_bytes(got, runners, learners, dict.fromkeys(runners, 100)) == 0
    # Learner-major order: learner 0's chunk first.
    assert learner_major_refs(got, {i: f"ref{i}" for i in runners}) == ["ref2", "ref4", "ref1", "ref3"]


def test_runners_without_a_learner_on_their_node_fill_the_learners_still_short():
    runners = {1: "a", 2: "a", 3: "a", 4: "c"}  # node c has no learner; node a has one runner too many
    learners = ["a", "b"]
    got = assign_runners(runners, learners)
    assert got == [[1, 2], [3, 4]]
    assert cross_node_bytes(got, runners, learners, {1: 1, 2: 2, 3: 4, 4: 8}) == 12


def test_uneven_counts_fall_back_to_splitting():
    assert assign_runners({1: "a", 2: "a", 3: "b"}, ["a", "b"]) is None
    assert assign_runners({}, ["a"]) is None


def test_one_local_learner_takes_everything():
    assert assign_runners({1: "a", 2: "b"}, ["a"]) == [[1, 2]]


def test_one_bundle_per_learner_node():
    b = node_bundles(
        num_learners=2, runners_per_learner=3, cpus_per_runner=1.0, cpus_per_learner=2.0, gpus_per_learner=1.0
    )
    assert b == [{"CPU": 5.0, "GPU": 1.0}, {"CPU": 5.0, "GPU": 1.0}]
