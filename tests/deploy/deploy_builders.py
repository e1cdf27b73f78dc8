"""Small real inputs for the deploy tests: a motion store, a config on it, deployment metadata."""

from __future__ import annotations

import numpy as np

from sonic_ray.robots import G1


def short_store(path, *, seconds=(0.5, 0.7, 0.9), fps=50.0, seed=0, smpl=False):
    """G1 clips near the default pose with joint sways, a slow root drift and turn (milliseconds to
    write). Short, so episodes end at clip ends within a few dozen steps."""
    from sonic_ray.motion.store import MotionClip, write_store

    rng = np.random.default_rng(seed)
    lo, hi, default = (
        np.asarray(a, dtype=np.float64) for a in (G1.joint_lower, G1.joint_upper, G1.default_joint_pos)
    )
    clips = []
    for c, sec in enumerate(seconds):
        t = np.arange(int(sec * fps) + 1) / fps
        yaw = 0.3 * t + rng.uniform(-1, 1)
        quat = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
        root = np.stack([0.1 * t, 0.02 * np.sin(t), np.full_like(t, G1.default_root_pos[2])], axis=1)
        sway = 0.08 * np.sin(3.0 * t[:, None] + rng.uniform(0, 6.3, G1.num_joints))
        joints = np.clip(default + sway, lo + 0.01, hi - 0.01)
        extra = {}
        if smpl:
            extra["smpl_joints"] = (rng.normal(size=(1, 24, 3)) * 0.3 + 0.01 * t[:, None, None]).astype(
                np.float32
            )
        clips.append(
            MotionClip(
                f"short{c}",
                "test",
                fps,
                root.astype(np.float32),
                quat.astype(np.float32),
                joints.astype(np.float32),
                **extra,
            )
        )
    write_store(path, clips, joint_names=G1.joint_names)
    return path


def config(store, *overrides):
    from sonic_ray.config import load_config

    return load_config(["+exp=smoke", f"motions.store={store}", "logging.wandb_mode=disabled", *overrides])


def deployment_metadata(cfg) -> dict:
    """The metadata an export of a checkpoint trained with `cfg` carries (all groups' layouts),
    through JSON as a reader of the file sees it."""
    import json

    from sonic_ray.deploy.export import base_metadata, observation_layouts
    from sonic_ray.deploy.onnx_meta import _jsonable
    from sonic_ray.robots import get_robot

    robot = get_robot(cfg.robot.name)
    layouts, command = observation_layouts(cfg, robot)
    return json.loads(json.dumps(_jsonable(base_metadata(cfg, robot, layouts, command, info={}))))


def write_checkpoint(root, cfg, *, seed=0, action_gain=100.0):
    """A checkpoint in the format `sonic-ray train` saves (driver.Trainer.state): the RLModule
    weights under learner/learner/rl_module/default_policy as numpy arrays keyed `ac.<name>`,
    config_yaml and model_kwargs. The model is sized by a real one-env probe, as training sizes it; its
    action head
    is scaled up by `action_gain` (undoing the 0.01 start) so outputs and motions are not tiny."""
    import torch

    from sonic_ray.config.compose import to_yaml
    from sonic_ray.eval.policy import model_kwargs_for
    from sonic_ray.models.actor_critic import ActorCritic
    from sonic_ray.train.checkpoint import save_checkpoint

    kwargs = model_kwargs_for(cfg)
    torch.manual_seed(seed)
    ac = ActorCritic(**kwargs)
    with torch.no_grad():
        ac.token.dyn_decoder[-1].weight.mul_(action_gain)
        ac.critic_normalizer.update(torch.randn(32, kwargs["critic_obs_dim"]))
        for norm in ac.actor_normalizers.values():  # statistics far from (0, 1): a graph without them differs
            norm.update(3.0 + 2.0 * torch.randn(32, norm.mean.shape[0]))
    weights = {f"ac.{k}": v.detach().numpy().copy() for k, v in ac.state_dict().items()}
    # SonicRLModule carries the normaliser statistics as float64 numpy arrays (count a 0-d array)
    state = {
        "format": 1,
        "iteration": 7,
        "rng": {},
        "config_yaml": to_yaml(cfg),
        "model_kwargs": kwargs,
        "learner": {"learner": {"rl_module": {"default_policy": weights}, "weights_seq_no": 7}},
    }
    return save_checkpoint(root, 7, state, extra_files={"config.yaml": to_yaml(cfg).encode()}), ac


def state_layout(state) -> dict:
    """What export reads from a checkpoint state: config_yaml, iteration and the module weights
    (key path, names, types, shapes). Other keys may come and go."""
    import numpy as np

    weights = state["learner"]["learner"]["rl_module"]["default_policy"]
    return {
        "top": sorted(k for k in ("config_yaml", "iteration", "learner", "model_kwargs") if k in state),
        "model_kwargs": sorted(state.get("model_kwargs", {})),
        "weights": {k: (type(v).__name__, tuple(np.shape(v))) for k, v in weights.items()},
    }
