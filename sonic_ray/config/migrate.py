"""Keys that were removed from the schema: a config that still carries one (a checkpoint's config, a
saved preset, a run's config.yaml) loads with the key dropped instead of failing as unknown.

Renamed or moved keys of checkpoints are migrated in `sonic_ray.eval.policy` (they need values
carried over); a key listed here had no effect left to carry.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

# dotted key: why it went
REMOVED_KEYS = {
    "logging.log_interval": "never read: the driver logs every iteration",
}


def drop_removed_keys(cfg: DictConfig) -> DictConfig:
    """`cfg` without the keys of REMOVED_KEYS (a copy when one is present, else `cfg` itself)."""
    present = [k for k in REMOVED_KEYS if OmegaConf.select(cfg, k, default=None) is not None]
    if not present:
        return cfg
    out = OmegaConf.create(OmegaConf.to_container(cfg))
    for key in present:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(out, parent) if parent else out
        node.pop(leaf)
    return out
