import pytest


@pytest.fixture(scope="module")
def local_ray():
    """One real local Ray instance shared by a test module (started and stopped here)."""
    import ray

    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
    )
    yield ray
    ray.shutdown()
