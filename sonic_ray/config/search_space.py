"""Search spaces from config (`tune.search_space`): specs parsed and checked. Ray-free.

Part of `config/` because composition checks a preset's search space (`compose.validate`); the
trial configs built from sampled values live in `sonic_ray.tune.space`.

A search space maps a dotted config key to a spec (see `TuneConfig`). Keys may also be given as
nested mappings (what a command-line `+tune.search_space.algo.actor_lr={loguniform:[1e-5,1e-3]}`
produces): a mapping whose only key is a spec kind is a spec, anything above it is the key path.
A key given both ways keeps the spec that comes last (a command-line `+tune.search_space...`
override replaces the preset's).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sonic_ray.config.errors import ConfigError
from sonic_ray.config.schema import SonicConfig

GRID_KINDS = ("grid", "fsq")  # every value is a trial (Tune grid search)
RANDOM_KINDS = ("choice", "uniform", "loguniform", "randint")  # one draw per trial
SPEC_KINDS = GRID_KINDS + RANDOM_KINDS
LEVELS_KEY = "actor_critic.quantizer.levels"
NOT_SWEPT = ("tune", "run_dir", "resume")  # keys a trial cannot take from the space
_ABSENT = object()


@dataclass(frozen=True)
class Spec:
    """One swept key: `kind` from SPEC_KINDS; `values` (grid, choice, fsq expanded) or `bounds`."""

    key: str
    kind: str
    values: tuple = ()
    bounds: tuple[float, float] = (0.0, 0.0)

    @property
    def is_grid(self) -> bool:
        return self.kind in GRID_KINDS


def plain(x: Any) -> Any:
    return OmegaConf.to_container(x) if isinstance(x, (DictConfig, ListConfig)) else x


def flatten_space(space: dict[str, Any], prefix: str = "") -> dict[str, dict]:
    """{'a': {'b': {'grid': [..]}}, 'c.d': {'uniform': [..]}} -> {'a.b': {'grid': ..}, 'c.d': {..}}."""
    out: dict[str, dict] = {}
    for key, node in plain(space).items():
        path = f"{prefix}{key}"
        if isinstance(node, dict) and len(node) == 1 and next(iter(node)) in SPEC_KINDS:
            out[path] = node
        elif isinstance(node, dict) and node:
            out.update(flatten_space(node, prefix=path + "."))
        else:
            kinds = ", ".join(SPEC_KINDS)
            raise ConfigError(
                f"config key 'tune.search_space.{path}': expected one of {{{kinds}: ...}}, got {node!r}"
            )
    return out


def parse_search_space(space: dict[str, Any], cfg: SonicConfig | DictConfig | None = None) -> list[Spec]:
    """Validated specs, in key order. With `cfg` (typed, or already a DictConfig of the schema),
    every key must name an existing config key."""
    conf = None if cfg is None else cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    specs = []
    for key, node in flatten_space(space).items():
        where = f"tune.search_space.{key}"
        if key.split(".")[0] in NOT_SWEPT:
            raise ConfigError(f"config key '{where}': {key.split('.')[0]} cannot be swept")
        if conf is not None and OmegaConf.select(conf, key, default=_ABSENT) is _ABSENT:
            raise ConfigError(
                f"config key '{where}': '{key}' is not a config key (see `sonic-ray config show`)"
            )
        kind, arg = next(iter(node.items()))
        specs.append(_spec(key, kind, arg, where))
    return specs


def _spec(key: str, kind: str, arg: Any, where: str) -> Spec:
    if kind in ("grid", "choice"):
        if not isinstance(arg, list) or not arg:
            raise ConfigError(
                f"config key '{where}.{kind}': expected a non-empty list of values, got {arg!r}"
            )
        return Spec(key, kind, values=tuple(arg))
    if kind == "fsq":
        if key != LEVELS_KEY:
            raise ConfigError(f"config key '{where}.fsq': the fsq spec sweeps {LEVELS_KEY} only")
        if not isinstance(arg, dict) or set(arg) != {"levels_per_dim", "num_dims"}:
            raise ConfigError(
                f"config key '{where}.fsq': expected "
                f"{{levels_per_dim: [L, ...], num_dims: [D, ...]}}, got {arg!r}"
            )
        for name, low in (("levels_per_dim", 2), ("num_dims", 1)):
            vals = arg[name]
            if (
                not isinstance(vals, list)
                or not vals
                or not all(isinstance(v, int) and v >= low for v in vals)
            ):
                raise ConfigError(
                    f"config key '{where}.fsq.{name}': expected a non-empty list of integers "
                    f">= {low}, got {vals!r}"
                )
        levels = [[lv] * d for lv, d in itertools.product(arg["levels_per_dim"], arg["num_dims"])]
        return Spec(key, kind, values=tuple(levels))
    ok = (
        isinstance(arg, list)
        and len(arg) == 2
        and all(isinstance(v, (int, float)) for v in arg)
        and arg[0] < arg[1]
    )
    ints = ok and all(isinstance(v, int) for v in arg)
    if not ok or (kind == "loguniform" and arg[0] <= 0) or (kind == "randint" and not ints):
        rule = {"loguniform": "0 < low < high", "randint": "integers low < high"}.get(kind, "low < high")
        raise ConfigError(f"config key '{where}.{kind}': expected [low, high] with {rule}, got {arg!r}")
    return Spec(key, kind, bounds=(arg[0], arg[1]))
