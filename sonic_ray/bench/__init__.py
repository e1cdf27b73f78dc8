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
    "sonic_ray.bench.faults",
)


def add_parser(subparsers) -> None:
    modules = [importlib.import_module(name) for name in BENCH_MODULES]
    p = subparsers.add_parser("bench", help="benchmarks (JSON output, ratios from one run)")
    sub = p.add_subparsers(dest="bench_name", metavar="NAME", required=True)
    for module in modules:
        module.add_parser(sub)
