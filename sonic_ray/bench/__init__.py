"""`sonic-ray bench NAME --json`: benchmarks that compare side by side in one run and write JSON.

Each benchmark module exposes `add_parser(subparsers)` (registering NAME) and `run(**kwargs) -> dict`.
"""

from __future__ import annotations

import importlib

BENCH_MODULES = (
    "sonic_ray.bench.motion",
    "sonic_ray.bench.physics",
    "sonic_ray.bench.env",
    "sonic_ray.bench.learner",
    "sonic_ray.bench.pipeline",
    "sonic_ray.bench.crossnode",
    "sonic_ray.bench.learning",
)


def _available_modules() -> list:
    modules = []
    for name in BENCH_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
    return modules


def add_parser(subparsers) -> None:
    modules = _available_modules()
    if not modules:
        return
    p = subparsers.add_parser("bench", help="benchmarks (JSON output, ratios from one run)")
    sub = p.add_subparsers(dest="bench_name", metavar="NAME", required=True)
    for module in modules:
        module.add_parser(sub)
