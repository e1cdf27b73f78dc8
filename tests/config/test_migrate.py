"""Removed keys: configs and checkpoints written while a key existed still load, without it."""

import yaml
from omegaconf import OmegaConf

from sonic_ray.config import load_config, to_typed, to_yaml
from sonic_ray.config.migrate import REMOVED_KEYS, drop_removed_keys
from sonic_ray.eval.policy import config_from_state


def _old_yaml() -> dict:
    old = yaml.safe_load(to_yaml(load_config(["+exp=smoke"])))
    old["logging"]["log_interval"] = 5  # removed: never read
    return old


def test_a_saved_config_with_a_removed_key_loads():
    cfg = to_typed(OmegaConf.create(_old_yaml()))
    assert not hasattr(cfg.logging, "log_interval")
    assert cfg == load_config(["+exp=smoke"])


def test_a_checkpoint_config_with_a_removed_key_loads():
    cfg = config_from_state({"config_yaml": yaml.safe_dump(_old_yaml())})
    assert cfg == load_config(["+exp=smoke"])


def test_drop_removed_keys_leaves_the_input_alone():
    conf = OmegaConf.create(_old_yaml())
    out = drop_removed_keys(conf)
    assert "log_interval" in conf.logging and "log_interval" not in out.logging
    clean = OmegaConf.create({"logging": {"progress": True}})
    assert drop_removed_keys(clean) is clean
    assert "logging.log_interval" in REMOVED_KEYS
