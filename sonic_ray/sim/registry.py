"""Physics backends by name: `make_sim("mujoco", model, num_envs=...)`.

Backends whose packages are missing are still listed in BACKENDS; `available_backends()` says
which ones import here, and `make_sim` raises the backend's own install hint otherwise.
"""

from __future__ import annotations

import importlib.util

import mujoco

from sonic_ray.sim.base import BatchedSim

BACKENDS = ("mujoco", "mujoco_warp", "isaaclab")


def available_backends() -> list[str]:
    """Names of the backends whose dependencies import in this environment."""
    names = ["mujoco"]
    if importlib.util.find_spec("mujoco_warp") is not None and importlib.util.find_spec("warp") is not None:
        names.append("mujoco_warp")
    if importlib.util.find_spec("isaaclab") is not None and importlib.util.find_spec("newton") is not None:
        names.append("isaaclab")
    return names


def make_sim(backend: str, model: mujoco.MjModel, **kwargs) -> BatchedSim:
    """A BatchedSim of `backend` over `model`; kwargs go to the backend (num_envs, decimation, device, ...).

    isaaclab also needs `mjcf` (the model's MJCF text, `robots.model_mjcf`): it converts it to USD.
    """
    # lazy: the backends import sim.base through this package's __init__, and mujoco_warp is optional
    if backend == "mujoco":
        from sonic_ray.sim.mujoco_cpu import MujocoCpuSim

        return MujocoCpuSim(model, **kwargs)
    if backend == "mujoco_warp":
        from sonic_ray.sim.mujoco_warp import MujocoWarpSim

        return MujocoWarpSim(model, **kwargs)
    if backend == "isaaclab":  # imported here only: nothing else in the project needs Isaac Lab
        from sonic_ray.sim.isaaclab import IsaacLabSim

        return IsaacLabSim(model, **kwargs)
    raise ValueError(f"unknown sim backend {backend!r}; known backends: {list(BACKENDS)}")
