"""Batched physics behind one protocol (`BatchedSim`); backends by name in `registry`."""

from sonic_ray.sim.base import BatchedSim, SimState
from sonic_ray.sim.registry import BACKENDS, available_backends, make_sim

__all__ = ["BACKENDS", "BatchedSim", "SimState", "available_backends", "make_sim"]
