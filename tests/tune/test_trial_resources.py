"""A trial's placement group is RLlib's request for the trial's config (driver + runners + learners)."""

import pytest

from sonic_ray.config import load_config

pytestmark = pytest.mark.slow  # imports RLlib and probes a one-env instance: ~5 s


def test_trial_bundles_follow_the_ray_config():
    from sonic_ray.tune.tuner import trial_resources

    local = trial_resources(load_config(["+exp=tune_smoke"]))
    assert local.bundles == [{"CPU": 1.0}, {"CPU": 1.0}]  # driver with its local learner, one runner
    cfg = load_config(
        [
            "+exp=tune_smoke",
            "ray.num_env_runners=3",
            "ray.cpus_per_env_runner=2",
            "ray.num_learners=2",
            "ray.cpus_per_learner=1",
            "ray.gpus_per_learner=0.5",
            "+ray.custom_resources_per_env_runner.sonic_sim=2",
        ]
    )
    bundles = trial_resources(cfg).bundles
    assert bundles[0]["CPU"] == 1.0 and not bundles[0].get("GPU")  # the driver only coordinates
    assert bundles[1:4] == [{"CPU": 2.0, "sonic_sim": 2.0}] * 3
    assert bundles[4:] == [{"CPU": 1.0, "GPU": 0.5}] * 2
