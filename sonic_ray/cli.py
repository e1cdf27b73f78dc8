"""The `sonic-ray` command. Each feature module registers its own subcommand with
`add_parser(subparsers)`; its parser sets `func(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sonic_ray.config.compose import ConfigError

# Feature modules that contribute top-level subcommands, in help order.
COMMAND_MODULES = (
    "sonic_ray.config.cli",
    "sonic_ray.ingest",  # motions: sonic_ray.motion.cli with the Ray Data import engine
    "sonic_ray.train.cli",
    "sonic_ray.tune.cli",
    "sonic_ray.eval.cli",
    "sonic_ray.deploy.cli",
    "sonic_ray.view.cli",
    "sonic_ray.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonic-ray",
        description="Train SONIC-style universal humanoid motion trackers on Ray.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"sonic-ray: config error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if not _is_user_error(e):
            raise
        print(f"sonic-ray {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sonic-ray: interrupted", file=sys.stderr)
        return 130


# Errors about the user's input (a checkpoint, a motion store) whose message names the file: one
# line, no traceback. Looked up among loaded modules: an error of a module never imported cannot occur.
USER_ERRORS = (
    ("sonic_ray.train.checkpoint", "CheckpointError"),
    ("sonic_ray.motion.store", "StoreError"),
    ("sonic_ray.motion.validate", "ClipRejected"),
)


def _is_user_error(e: Exception) -> bool:
    classes = tuple(getattr(sys.modules[m], name) for m, name in USER_ERRORS if m in sys.modules)
    return isinstance(e, classes)


if __name__ == "__main__":
    raise SystemExit(main())
