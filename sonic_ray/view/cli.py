"""`sonic-ray view motions|policy`: the browser viewer. viser (an optional extra)
loads only when a page starts; without it the commands say how to install it.

Bad input (a store, clip, checkpoint or ONNX file that does not open, a busy port) ends the
command with one line naming it and exit status 2, before any server starts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sonic_ray.config.compose import ConfigError
from sonic_ray.motion.store import StoreError
from sonic_ray.train.checkpoint import CheckpointError
from sonic_ray.view.motions_app import MotionsApp
from sonic_ray.view.policy_app import PolicyApp
from sonic_ray.view.replay import MotionStore, Poser
from sonic_ray.view.server import PortBusy, announce, serve, start_server
from sonic_ray.view.session import PolicySession, checkpoint_policies, onnx_policies

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to serve on (default {DEFAULT_PORT}; 0: any free)",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}: this machine "
        "only; reach it from elsewhere through an ssh tunnel)",
    )


def add_parser(subparsers) -> None:
    view = subparsers.add_parser("view", help="browser viewer: replay stored motions, or watch a policy live")
    sub = view.add_subparsers(dest="view_command", metavar="WHAT", required=True)

    m = sub.add_parser("motions", help="replay the clips of a motion store (kinematic, the robot's own FK)")
    m.add_argument("store", metavar="STORE", help="a motion store (.parquet)")
    m.add_argument("--clip", metavar="NAME", help="clip shown first (default: the store's first)")
    m.add_argument("--robot", default="g1", help="robot the store is for (default g1)")
    _server_args(m)
    m.set_defaults(func=cmd_motions)

    p = sub.add_parser("policy", help="run a checkpoint's or an exported ONNX policy live in MuJoCo (CPU)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PATH", help="a checkpoint dir, or a run dir (its latest)")
    src.add_argument(
        "--onnx",
        metavar="FILE",
        help="a policy_<encoder>.onnx from `sonic-ray export` (the other "
        "policy_*.onnx beside it become the encoder choices)",
    )
    p.add_argument(
        "--motions",
        metavar="STORE",
        help="reference clips (required with --onnx; default with --checkpoint: the store it was trained on)",
    )
    p.add_argument("--clip", metavar="NAME", help="clip shown first (default: the store's first)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pushes")
    _server_args(p)
    p.set_defaults(func=cmd_policy)


def _fail(what: str, err: BaseException | str) -> int:
    if isinstance(err, KeyError) and err.args:  # str(KeyError) quotes its message
        err = err.args[0]
    print(f"sonic-ray view {what}: {err}", file=sys.stderr)
    return 2


def _need_viser(what: str) -> bool:
    try:
        import viser  # noqa: F401
    except ModuleNotFoundError:
        _fail(what, "the viewer needs viser: pip install 'sonic-ray[view]' (make setup installs it)")
        return False
    return True


def build_motions(args: argparse.Namespace):
    """(store, poser) for `view motions`, checked (the clip too) before any server starts."""
    store = MotionStore(args.store)
    poser = Poser(args.robot)
    poser.check_joints(store)
    if args.clip:
        store.index(args.clip)
    return store, poser


def cmd_motions(args: argparse.Namespace) -> int:
    if not _need_viser("motions"):
        return 2
    try:
        store, poser = build_motions(args)
        server = start_server(args.host, args.port, title=f"sonic-ray motions: {store.path.name}")
    except (FileNotFoundError, StoreError, KeyError, PortBusy) as e:
        return _fail("motions", e)

    app = MotionsApp(server, store, poser, clip=args.clip)
    announce(server, args.host, "motions")
    serve(server, app.tick, rate_hz=30.0)
    return 0


def build_policy(args: argparse.Namespace):
    """(PolicySession, page title) for `view policy`, everything opened and checked."""
    if args.checkpoint:
        policies, store = checkpoint_policies(args.checkpoint)
        title, encoder = f"checkpoint {Path(args.checkpoint).name}", None
    else:
        if not args.motions:
            raise ValueError("--onnx needs --motions STORE (the reference clips)")
        policies, store = onnx_policies(args.onnx), None
        title, encoder = f"ONNX {Path(args.onnx).name}", next(iter(policies))  # the file named acts first
    session = PolicySession(policies, args.motions or store, clip=args.clip, encoder=encoder, seed=args.seed)
    return session, title


def cmd_policy(args: argparse.Namespace) -> int:
    if not _need_viser("policy"):
        return 2
    try:
        session, title = build_policy(args)
        server = start_server(args.host, args.port, title=f"sonic-ray policy: {title}")
    except (FileNotFoundError, CheckpointError, ConfigError, StoreError, ValueError, KeyError, PortBusy) as e:
        return _fail("policy", e)

    app = PolicyApp(server, session, title=title)
    announce(server, args.host, "policy")
    serve(server, app.tick, rate_hz=float(session.meta["control_hz"]))
    return 0
