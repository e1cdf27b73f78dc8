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
    motion["reset_pose_noise"] = {
        "root_pos": [-0.05, 0.05],
        "root_rpy": [-0.1, 0.1],
        "joint_pos": [-0.1, 0.1],
    }
    del old["actor_critic"]["obs_normalization"], old["env"]["action_clip"]  # keys added later: defaults
    old["env"]["rewards"]["feet_acc_l2"] = old["env"]["rewards"].pop("joint_acc_l2")
    del old["env"]["rewards"]["feet_acc_l2"]["params"]
    del old["actor_critic"]["quantizer"]["bound"]  # FSQ was clamp-bounded before the key existed
    old["algo"]["eval_interval"] = 7
    del old["callbacks"]["eval_interval"]
    new = config_from_state({"config_yaml": yaml.safe_dump(old)})
    assert new.env.commands.motion.sampler == "uniform"
    assert new.env.commands.motion.pre_failure_window_s == 100 / cfg.motions.control_fps
    assert new.callbacks.eval_interval == 7
    assert new.sim.backend == cfg.sim.backend
    noise = new.env.commands.motion.reset_pose_noise
    assert noise["root_pos_xy"] == noise["root_pos_z"] == [-0.05, 0.05]
    assert noise["root_roll_pitch"] == noise["root_yaw"] == [-0.1, 0.1]
    assert "root_pos" not in noise and "root_rpy" not in noise
    assert new.env.rewards["joint_acc_l2"].params["joint_pattern"] == ".*ankle.*"
    assert "feet_acc_l2" not in new.env.rewards
    assert new.actor_critic.obs_normalization is False and new.env.action_clip == 100.0
    assert new.actor_critic.quantizer.bound == "clamp" and cfg.actor_critic.quantizer.bound == "tanh"
