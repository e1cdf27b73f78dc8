"""Configuration: Hydra-composed YAML presets validated into typed dataclasses."""

from sonic_ray.config.compose import (
    ConfigError,
    compose,
    config_dir,
    config_from_dict,
    config_to_dict,
    load_config,
    to_typed,
    to_yaml,
)
from sonic_ray.config.schema import SonicConfig

__all__ = [
    "ConfigError",
    "SonicConfig",
    "compose",
    "config_dir",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "to_typed",
    "to_yaml",
]
