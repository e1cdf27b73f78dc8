"""`sonic-ray train [OVERRIDES...]`: train on Ray (local by default, or the cluster at RAY_ADDRESS)."""

from __future__ import annotations

import argparse
import sys

from sonic_ray.config.cli import OVERRIDES_HELP


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a universal token policy with RLlib on Ray")
    p.add_argument(
        "overrides", nargs="*", help=OVERRIDES_HELP + "; run_dir=PATH, resume=PATH, ray.address=auto"
    )
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    """0: finished, or stopped by SIGTERM/SIGINT with a checkpoint saved; 1: a checkpoint, the motion
    store or training itself failed (one line on stderr naming the file or the iteration)."""
    from sonic_ray.config.compose import load_config

    cfg = load_config(args.overrides)  # fails before any Ray process starts
    from sonic_ray.motion.store import StoreError
    from sonic_ray.train.checkpoint import CheckpointError
    from sonic_ray.train.driver import Trainer, TrainingStopped

    try:
        trainer = Trainer(cfg)
    except (CheckpointError, StoreError) as e:
        print(f"sonic-ray train: {e}", file=sys.stderr)
        return 1
    try:
        last = trainer.run()
    except TrainingStopped as e:
        print(f"sonic-ray train: {e}", file=sys.stderr)
        return 1
    finally:
        trainer.close()
    if trainer.stopped_by:
        print(
            f"sonic-ray train: stopped by {trainer.stopped_by} after iteration {trainer.iteration}, "
            f"checkpoint saved; continue with resume={trainer.run_dir}",
            file=sys.stderr,
        )
        return 0
    print(f"run dir: {trainer.run_dir}", file=sys.stderr)
    keys = ("iteration", "env/episode_length", "reward/total", "perf/env_steps_per_s")
    print(" ".join(f"{k}={last.get(k)}" for k in keys))
    print(f"watch the latest checkpoint: {view_command(trainer.run_dir, cfg)}")
    return 0


def view_command(run_dir, cfg) -> str:
    """The `sonic-ray view policy` line for a run's latest checkpoint (a run dir resolves to it)."""
    import shlex

    from sonic_ray.envs.factory import motion_store_path

    return (
        f"sonic-ray view policy --checkpoint {shlex.quote(str(run_dir))} "
        f"--motions {shlex.quote(str(motion_store_path(cfg)))}"
    )
