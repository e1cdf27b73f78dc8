"""`sonic-ray tune [OVERRIDES...]`: a Ray Tune sweep over the keys of `tune.search_space`."""

from __future__ import annotations

import argparse

from sonic_ray.config.cli import OVERRIDES_HELP
from sonic_ray.tune.results import read_results_csv
from sonic_ray.tune.tuner import run_sweep


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "tune",
        help="sweep config keys (FSQ levels, encoder probabilities, ...) with Ray Tune",
        description="Runs one training trial per point of tune.search_space (ASHA stops weak trials early on "
        "tune.metric) and writes results.csv, results.png and best.yaml (a configs/exp/ preset) "
        "into run_dir.",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        help=OVERRIDES_HELP + "; +exp=tune_smoke, tune=fsq_encoders, run_dir=PATH, tune.metric=KEY",
    )
    p.set_defaults(func=_tune)


def _tune(args: argparse.Namespace) -> int:
    run_dir = run_sweep(args.overrides)
    rows = read_results_csv(run_dir / "results.csv")
    print(f"run dir: {run_dir}")
    for row in rows:
        print(" ".join(f"{k}={v}" for k, v in row.items() if k not in ("run_dir", "error") and v != ""))
    best = run_dir / "best.yaml"
    print(f"best: {best}" if best.is_file() else "best: none (no trial reported the metric)")
    return 0 if best.is_file() else 1
