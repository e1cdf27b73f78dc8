"""Trial configs from sampled values and the grid a sweep runs; the search space itself is parsed in
`sonic_ray.config.search_space` (re-exported here for the tuner). Ray-free.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sonic_ray.config.compose import to_typed
from sonic_ray.config.errors import ConfigError
from sonic_ray.config.schema import SonicConfig
from sonic_ray.config.search_space import (
    GRID_KINDS,
    LEVELS_KEY,
    NOT_SWEPT,
    RANDOM_KINDS,
    SPEC_KINDS,
    Spec,
    flatten_space,
    parse_search_space,
    plain,
)

__all__ = [
    "GRID_KINDS",
    "LEVELS_KEY",
    "NOT_SWEPT",
    "RANDOM_KINDS",
    "SPEC_KINDS",
    "Spec",
    "check_space",
    "flatten_space",
    "grid_points",
    "num_trials",
    "parse_search_space",
    "trial_config",
]


def grid_points(specs: list[Spec]) -> list[dict[str, Any]]:
    """Every combination of the grid specs' values (random specs are left out)."""
    grids = [s for s in specs if s.is_grid]
    return [
        dict(zip([s.key for s in grids], combo)) for combo in itertools.product(*[s.values for s in grids])
    ]


def num_trials(specs: list[Spec], num_samples: int) -> int:
    return math.prod(len(s.values) for s in specs if s.is_grid) * num_samples


def trial_config(base: DictConfig, params: dict[str, Any]) -> SonicConfig:
    """The composed config `base` with each dotted key of `params` replaced, validated."""
    conf = OmegaConf.create(OmegaConf.to_container(base))
    for key, value in params.items():
        try:
            OmegaConf.update(conf, key, plain(value), merge=False, force_add=True)
        except OmegaConfBaseException as e:
            raise ConfigError(f"config key '{key}': cannot set {value!r} ({e})") from e
    try:
        return to_typed(conf)
    except ConfigError as e:
        raise ConfigError(f"trial {params}: {e}") from e


def check_space(base: DictConfig, specs: list[Spec]) -> None:
    """Fail before Ray starts: every grid point (random specs at their first value or low bound)
    must give a valid config."""
    fixed = {s.key: (s.values[0] if s.kind == "choice" else s.bounds[0]) for s in specs if not s.is_grid}
    for s in specs:
        if s.kind == "choice":
            for v in s.values:
                trial_config(base, {s.key: v})
    for point in grid_points(specs) or [{}]:
        trial_config(base, {**fixed, **point})
