"""Checkpoints saved by earlier versions keep loading: their config is migrated, not rejected."""

import yaml

from sonic_ray.config import load_config, to_yaml
from sonic_ray.eval.policy import config_from_state


def test_old_keys_are_migrated():
    cfg = load_config(["+exp=smoke"])
    old = yaml.safe_load(to_yaml(cfg))
    old["sim"]["warp_device"] = "cpu"  # dropped: the warp backend runs on `device`
    motion = old["env"]["commands"]["motion"]
    del motion["sampler"], motion["pre_failure_window_s"]
    motion["adaptive"] = False
    motion["max_window_shift_frames"] = 100
    old["algo"]["eval_interval"] = 7
    del old["callbacks"]["eval_interval"]
    new = config_from_state({"config_yaml": yaml.safe_dump(old)})
    assert new.env.commands.motion.sampler == "uniform"
    assert new.env.commands.motion.pre_failure_window_s == 100 / cfg.motions.control_fps
    assert new.callbacks.eval_interval == 7
    assert new.sim.backend == cfg.sim.backend
