"""Compose YAML presets with Hydra's compose API and validate them into `SonicConfig`.

This is the only place that reads `configs/`. Every command calls `load_config(overrides)` once,
before any Ray process starts, so a bad key fails in milliseconds with its full path.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sonic_ray.config.errors import ConfigError
from sonic_ray.config.migrate import drop_removed_keys
from sonic_ray.config.schema import SonicConfig
from sonic_ray.config.search_space import parse_search_space

ENV_CONFIG_DIR = "SONIC_RAY_CONFIG_DIR"
RESIDUAL_MODES = ("none", "post_quant", "pre_quant", "replace")
SIM_BACKENDS = ("mujoco", "mujoco_warp", "isaaclab")
FSQ_BOUNDS = ("tanh", "clamp")  # sonic_ray.models.fsq.BOUNDS (config stays torch-free)
WANDB_MODES = ("offline", "online", "disabled")
ACTIVATIONS = ("silu", "elu", "relu", "tanh", "gelu")
EVENT_MODES = ("startup", "reset", "interval")
TUNE_SCHEDULERS = ("asha", "fifo")
START_SAMPLERS = ("uniform", "adaptive")


def config_dir() -> Path:
    """`$SONIC_RAY_CONFIG_DIR`, else the `configs/` beside the package (source checkout)."""
    if os.environ.get(ENV_CONFIG_DIR):
        path = Path(os.environ[ENV_CONFIG_DIR]).expanduser().resolve()
    else:
        path = Path(__file__).resolve().parents[2] / "configs"
    if not (path / "base.yaml").is_file():
        raise ConfigError(
            f"no base.yaml in config directory {path}: set {ENV_CONFIG_DIR} to the project's configs/ folder"
        )
    return path


def compose(overrides: Sequence[str] = (), *, config_name: str = "base") -> DictConfig:
    """Hydra composition of `configs/<config_name>.yaml` with command-line style overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import ConfigCompositionException, HydraException

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, ConfigCompositionException, OmegaConfBaseException) as e:
        raise ConfigError(f"cannot compose config with overrides {list(overrides)}: {_cause(e)}") from e


def _cause(e: BaseException) -> str:
    msgs = []
    while e is not None:
        msgs.append(str(e).strip())
        e = e.__cause__
    return " <- ".join(m for m in msgs if m)


def to_typed(cfg: DictConfig) -> SonicConfig:
    """Merge into the schema (unknown keys and wrong types fail with the full key) and check values."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SonicConfig), drop_removed_keys(cfg))
        typed: SonicConfig = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        msg = getattr(e, "msg", str(e)).splitlines()[0]
        raise ConfigError(f"config key '{key}': {msg}") from e
    validate(typed, merged)
    return typed


def load_config(overrides: Sequence[str] = ()) -> SonicConfig:
    return to_typed(compose(overrides))


def config_to_dict(cfg: SonicConfig) -> dict:
    """The validated config as plain dicts and lists: what RLlib's config dicts (env_config,
    learner_config_dict) carry to the runner and learner processes."""
    return OmegaConf.to_container(OmegaConf.structured(cfg))


def config_from_dict(data: dict) -> SonicConfig:
    """Inverse of `config_to_dict`, at the RLlib boundary: once per process (env runner, learner,
    algorithm), which then passes typed sections and keyword arguments down."""
    return to_typed(OmegaConf.create(data))


def to_yaml(cfg: SonicConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def _check(ok: bool, key: str, expected: str, got) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}': expected {expected}, got {got!r}")


REFERENCE_MODES = ("table", "cached", "window")


def _check_motions(cfg: SonicConfig) -> None:
    """motions.reference and its sizes; a window must hold the furthest future frame observed."""
    m, mc = cfg.motions, cfg.env.commands.motion
    _check(m.reference in REFERENCE_MODES, "motions.reference", f"one of {REFERENCE_MODES}", m.reference)
    _check(m.cache_frames >= 1, "motions.cache_frames", "an integer >= 1", m.cache_frames)
    reaches = (
        round((max(mc.num_future_frames, 1) - 1) * mc.future_dt * m.control_fps),
        round((max(mc.smpl_num_future_frames, 1) - 1) * mc.smpl_future_dt * m.control_fps),
    )
    _check(
        m.window_frames > max(reaches),
        "motions.window_frames",
        f"an integer > {max(reaches)} (the furthest future frame the observations read)",
        m.window_frames,
    )
    _check(
        min(reaches) < m.window_full_frames <= m.window_frames,
        "motions.window_full_frames",
        f"an integer in {min(reaches) + 1}..motions.window_frames ({m.window_frames}): above the "
        "shortest horizon's furthest frame",
        m.window_full_frames,
    )


def validate(cfg: SonicConfig, conf: DictConfig) -> None:
    """Value checks that types cannot express. Raises ConfigError naming the first bad key.
    `conf`: cfg as the schema-merged DictConfig (what the sweep keys are looked up in)."""
    env, algo, ac, ray = cfg.env, cfg.algo, cfg.actor_critic, cfg.ray
    _check_finite(cfg, "")
    _check(env.num_envs > 0, "env.num_envs", "an integer > 0", env.num_envs)
    _check(env.episode_length_s > 0, "env.episode_length_s", "> 0 seconds", env.episode_length_s)
    _check(cfg.sim.backend in SIM_BACKENDS, "sim.backend", f"one of {SIM_BACKENDS}", cfg.sim.backend)
    _check(cfg.sim.decimation >= 1, "sim.decimation", "an integer >= 1", cfg.sim.decimation)
    _check(cfg.sim.timestep > 0, "sim.timestep", "> 0 seconds", cfg.sim.timestep)
    _check(cfg.motions.control_fps > 0, "motions.control_fps", "> 0 frames/s", cfg.motions.control_fps)
    policy_dt = cfg.sim.timestep * cfg.sim.decimation
    frame_s = 1.0 / cfg.motions.control_fps
    _check(
        abs(policy_dt * cfg.motions.control_fps - 1.0) < 1e-6,
        "sim.timestep",
        f"sim.timestep x sim.decimation = 1 / motions.control_fps ({frame_s:g} s: one policy step per "
        f"reference frame); {cfg.sim.timestep:g} x {cfg.sim.decimation} = {policy_dt:g} s",
        cfg.sim.timestep,
    )
    _check(
        env.episode_length_s >= policy_dt,
        "env.episode_length_s",
        f">= one policy step ({policy_dt:g} s)",
        env.episode_length_s,
    )
    _check(
        env.action_clip > 0, "env.action_clip", "> 0 (actions are clipped to +-action_clip)", env.action_clip
    )
    _check(cfg.sim.num_threads >= 1, "sim.num_threads", "an integer >= 1", cfg.sim.num_threads)
    _check_motions(cfg)
    _check(0 <= env.events.level <= 4, "env.events.level", "an integer in 0..4", env.events.level)
    for name, term in env.events.terms.items():
        _check(term.mode in EVENT_MODES, f"env.events.terms.{name}.mode", f"one of {EVENT_MODES}", term.mode)
        lo_hi = term.interval_range_s
        _check(
            len(lo_hi) == 2 and 0 < lo_hi[0] <= lo_hi[1],
            f"env.events.terms.{name}.interval_range_s",
            "[lo, hi] seconds with 0 < lo <= hi",
            lo_hi,
        )
    groups = {
        "policy": env.observations.policy,
        "critic": env.observations.critic,
        **{f"tokenizer.{k}": g for k, g in env.observations.tokenizer.items()},
    }
    for gname, group in groups.items():
        for tname, term in group.terms.items():
            tkey = f"env.observations.{gname}.terms.{tname}"
            _check(term.noise >= 0, f"{tkey}.noise", "a noise half-width >= 0", term.noise)

    q = ac.quantizer
    _check(len(q.levels) > 0, "actor_critic.quantizer.levels", "a non-empty list of integers >= 2", q.levels)
    for i, level in enumerate(q.levels):
        _check(level >= 2, f"actor_critic.quantizer.levels[{i}]", "an FSQ level >= 2", level)
    _check(q.num_tokens >= 1, "actor_critic.quantizer.num_tokens", "an integer >= 1", q.num_tokens)
    _check(q.bound in FSQ_BOUNDS, "actor_critic.quantizer.bound", f"one of {FSQ_BOUNDS}", q.bound)
    _check(
        q.bound != "tanh" or 2 not in q.levels,
        "actor_critic.quantizer.levels",
        "levels >= 3 with bound=tanh (a 2-level FSQ needs actor_critic.quantizer.bound=clamp)",
        q.levels,
    )
    mode = ac.universal_token.residual_mode
    _check(
        mode in RESIDUAL_MODES, "actor_critic.universal_token.residual_mode", f"one of {RESIDUAL_MODES}", mode
    )
    _check(len(ac.encoders) > 0, "actor_critic.encoders", "at least one encoder", dict(ac.encoders))
    mlps = {f"actor_critic.encoders.{k}": v for k, v in ac.encoders.items()}
    mlps.update(
        {
            "actor_critic.decoders.g1_dyn": ac.decoders.g1_dyn,
            "actor_critic.decoders.g1_kin": ac.decoders.g1_kin,
            "actor_critic.critic": ac.critic,
        }
    )
    for key, mlp in mlps.items():
        _check(
            len(mlp.hidden) > 0 and all(h > 0 for h in mlp.hidden),
            f"{key}.hidden",
            "positive layer sizes",
            mlp.hidden,
        )
        _check(mlp.activation in ACTIVATIONS, f"{key}.activation", f"one of {ACTIVATIONS}", mlp.activation)
    _check(
        0 < ac.min_std <= ac.init_noise_std <= ac.max_std,
        "actor_critic.init_noise_std",
        f"min_std ({ac.min_std}) <= init_noise_std <= max_std ({ac.max_std}), all > 0",
        ac.init_noise_std,
    )

    mc, key = env.commands.motion, "env.commands.motion"
    _check(mc.sampler in START_SAMPLERS, f"{key}.sampler", f"one of {START_SAMPLERS}", mc.sampler)
    _check(mc.bin_size_frames >= 1, f"{key}.bin_size_frames", "an integer >= 1", mc.bin_size_frames)
    _check(
        mc.failure_rate_cap > 0,
        f"{key}.failure_rate_cap",
        "> 0 (a multiple of the mean rate)",
        mc.failure_rate_cap,
    )
    _check(0 <= mc.uniform_ratio <= 1, f"{key}.uniform_ratio", "a share in [0, 1]", mc.uniform_ratio)
    _check(
        mc.pre_failure_window_s >= 0, f"{key}.pre_failure_window_s", ">= 0 seconds", mc.pre_failure_window_s
    )
    _check(0 < mc.rate_smoothing <= 1, f"{key}.rate_smoothing", "an EMA weight in (0, 1]", mc.rate_smoothing)
    for k in ("future_dt", "smpl_future_dt"):
        _check(getattr(mc, k) > 0, f"{key}.{k}", "> 0 seconds between future frames", getattr(mc, k))
    for name, lo_hi in mc.reset_pose_noise.items():
        _check(
            len(lo_hi) == 2 and lo_hi[0] <= lo_hi[1],
            f"{key}.reset_pose_noise.{name}",
            "a range [lo, hi]",
            lo_hi,
        )

    probs = env.commands.motion.encoder_sample_probs
    key = "env.commands.motion.encoder_sample_probs"
    for name, p in probs.items():
        _check(
            name in ac.encoders,
            f"{key}.{name}",
            f"an encoder of actor_critic.encoders {sorted(ac.encoders)}",
            name,
        )
        _check(math.isfinite(p) and p >= 0, f"{key}.{name}", "a finite probability >= 0", p)
    _check(sum(probs.values()) > 0, key, "probabilities that sum to a positive number", dict(probs))

    _check(algo.num_steps_per_env > 0, "algo.num_steps_per_env", "an integer > 0", algo.num_steps_per_env)
    _check(
        algo.num_learning_epochs > 0, "algo.num_learning_epochs", "an integer > 0", algo.num_learning_epochs
    )
    _check(algo.num_mini_batches > 0, "algo.num_mini_batches", "an integer > 0", algo.num_mini_batches)
    _check(0 < algo.gamma <= 1, "algo.gamma", "a discount in (0, 1]", algo.gamma)
    _check(0 <= algo.lam <= 1, "algo.lam", "a GAE lambda in [0, 1]", algo.lam)
    _check(0 < algo.clip_param <= 1, "algo.clip_param", "a PPO ratio clip in (0, 1]", algo.clip_param)
    _check(algo.schedule in ("adaptive", "fixed"), "algo.schedule", "'adaptive' or 'fixed'", algo.schedule)
    for k in ("actor_lr", "critic_lr", "lr_max"):
        _check(0 < getattr(algo, k) <= 1, f"algo.{k}", "a learning rate in (0, 1]", getattr(algo, k))
    _check(
        0 < algo.lr_min <= algo.lr_max, "algo.lr_min", f"0 < lr_min <= lr_max ({algo.lr_max})", algo.lr_min
    )
    for k in ("desired_kl", "max_grad_norm"):
        _check(getattr(algo, k) > 0, f"algo.{k}", "> 0", getattr(algo, k))
    for k in ("entropy_coef", "value_loss_coef"):
        _check(getattr(algo, k) >= 0, f"algo.{k}", "a loss weight >= 0", getattr(algo, k))
    for k, w in dataclasses.asdict(cfg.aux_losses).items():
        _check(w >= 0, f"aux_losses.{k}", "a loss weight >= 0", w)
    _check(algo.max_iterations > 0, "algo.max_iterations", "an integer > 0", algo.max_iterations)
    _check(algo.save_interval > 0, "algo.save_interval", "an integer > 0", algo.save_interval)
    cb = cfg.callbacks
    _check(cb.eval_interval >= 0, "callbacks.eval_interval", "an integer >= 0 (0 disables)", cb.eval_interval)
    for i, enc in enumerate(cb.eval_encoders):
        _check(
            enc in ac.encoders,
            f"callbacks.eval_encoders[{i}]",
            f"an encoder of actor_critic.encoders {sorted(ac.encoders)}",
            enc,
        )
    _check(len(cb.eval_encoders) > 0, "callbacks.eval_encoders", "at least one encoder", cb.eval_encoders)
    for k in ("eval_num_envs", "eval_clips_per_task", "eval_max_tasks"):
        _check(getattr(cb, k) >= 1, f"callbacks.{k}", "an integer >= 1", getattr(cb, k))
    for k in ("eval_max_clips", "eval_render"):
        _check(getattr(cb, k) >= 0, f"callbacks.{k}", "an integer >= 0", getattr(cb, k))
    _check(cb.eval_cpus_per_task > 0, "callbacks.eval_cpus_per_task", "> 0", cb.eval_cpus_per_task)

    _check(ray.num_env_runners >= 1, "ray.num_env_runners", "an integer >= 1", ray.num_env_runners)
    _check(ray.num_learners >= 0, "ray.num_learners", "an integer >= 0", ray.num_learners)
    _check(
        ray.learner_threads >= 0,
        "ray.learner_threads",
        "an integer >= 0 (0: one per CPU of the learner)",
        ray.learner_threads,
    )
    for k in ("cpus_per_env_runner", "gpus_per_env_runner", "cpus_per_learner", "gpus_per_learner"):
        _check(getattr(ray, k) >= 0, f"ray.{k}", ">= 0", getattr(ray, k))
    for k in ("custom_resources_per_env_runner", "custom_resources_per_learner"):
        for name, amount in getattr(ray, k).items():
            _check(amount >= 0, f"ray.{k}.{name}", "an amount >= 0", amount)
    _check(
        cfg.logging.wandb_mode in WANDB_MODES,
        "logging.wandb_mode",
        f"one of {WANDB_MODES}",
        cfg.logging.wandb_mode,
    )
    validate_tune(cfg, conf)


def _check_finite(node, key: str) -> None:
    """Every float in the config (fields, list items, dict values) must be finite: an inf or nan
    learning rate, clip or duration passes every range check below and breaks training silently."""
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            _check_finite(getattr(node, f.name), f"{key}.{f.name}" if key else f.name)
    elif isinstance(node, dict):
        for k, v in node.items():
            _check_finite(v, f"{key}.{k}")
    elif isinstance(node, list | tuple):
        for i, v in enumerate(node):
            _check_finite(v, f"{key}[{i}]")
    elif isinstance(node, float):
        _check(math.isfinite(node), key, "a finite number", node)


def validate_tune(cfg: SonicConfig, conf: DictConfig) -> None:
    """The tune section's values, and its search space parsed in full (every swept key must exist)
    so that any command fails on a bad sweep at composition; `sonic-ray tune` parses it again
    without the key check to get its specs. `conf` (the schema-merged DictConfig of cfg) is what
    the keys are looked up in."""
    t = cfg.tune
    _check(t.mode in ("max", "min"), "tune.mode", "'max' or 'min'", t.mode)
    _check(t.scheduler in TUNE_SCHEDULERS, "tune.scheduler", f"one of {TUNE_SCHEDULERS}", t.scheduler)
    _check(bool(t.metric), "tune.metric", "a metric key such as reward/total", t.metric)
    for k, low in (
        ("num_samples", 1),
        ("grace_period", 1),
        ("reduction_factor", 2),
        ("max_concurrent_trials", 1),
    ):
        _check(getattr(t, k) >= low, f"tune.{k}", f"an integer >= {low}", getattr(t, k))
    if t.search_space:
        parse_search_space(t.search_space, conf)
