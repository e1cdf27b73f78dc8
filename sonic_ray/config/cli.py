"""`sonic-ray config show [OVERRIDES...]`: print the composed, validated configuration."""

from __future__ import annotations

import argparse

from sonic_ray.config.compose import load_config, to_yaml

OVERRIDES_HELP = "Hydra overrides: key=value, +key=value (add), ++key=value (add or replace), +exp=NAME"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("config", help="compose and inspect configurations")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print the composed, validated config as YAML")
    show.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    show.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> int:
    print(to_yaml(load_config(args.overrides)), end="")
    return 0
