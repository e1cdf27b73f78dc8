"""Domain randomisation events: one function per term, `(env, env_ids, **params) -> None`, named as
in configs/env/events, and the EventManager that runs them.

A term is active when `level >= min_level` (level 0 turns every term off, 4 turns all on).
Modes: "startup" (once, all envs, at construction), "reset" (envs being reset), "interval"
(each env on its own timer drawn from interval_range_s). Reset pose noise is not an event: the
motion command applies it (reset_pose_noise), since it perturbs the reference the env starts from.

Physical randomisation goes through the simulator's hooks (the BatchedSim DR API):
set_friction, set_restitution, set_com_offset, set_body_mass_scale, push (sonic_ray/sim/base.py).
"""

from __future__ import annotations

import torch

from sonic_ray.envs.managers import _field

MODES = ("startup", "reset", "interval")
MAX_LEVEL = 4


def _uniform(env, shape, lo_hi) -> torch.Tensor:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    return lo + (hi - lo) * torch.rand(shape, generator=env.generator, device=env.device)


def _hook(env, name: str):
    fn = getattr(env.sim, name, None)
    if fn is None:
        raise NotImplementedError(
            f"{type(env.sim).__name__} has no domain-randomisation hook {name!r}; "
            "lower env.events.level or use a backend that supports it"
        )
    return fn


def physics_material(
    env, env_ids, static_friction=(1.0, 1.0), dynamic_friction=(1.0, 1.0), restitution=(0.0, 0.0)
) -> None:
    """Friction (static, dynamic) and restitution of the robot's geoms, one draw per env."""
    n = len(env_ids)
    static = _uniform(env, (n,), static_friction)
    dynamic = torch.minimum(_uniform(env, (n,), dynamic_friction), static)  # dynamic <= static
    _hook(env, "set_friction")(env_ids, static, dynamic)
    _hook(env, "set_restitution")(env_ids, _uniform(env, (n,), restitution))


def default_joint_offsets(env, env_ids, range=(-0.01, 0.01)) -> None:  # noqa: A002 (config name)
    """Calibration error: the pose the actions are centred on shifts per env (rad, per joint)."""
    env.joint_offsets[env_ids] = _uniform(env, (len(env_ids), env.action_dim), range)


def torso_com(env, env_ids, x=(0.0, 0.0), y=(0.0, 0.0), z=(0.0, 0.0), body="torso_link") -> None:
    """Shift the torso's centre of mass (m, body frame) per env."""
    n = len(env_ids)
    offset = torch.stack([_uniform(env, (n,), r) for r in (x, y, z)], dim=-1)
    _hook(env, "set_com_offset")(env_ids, int(env.cmd.body_ids((body,))[0]), offset)


def link_mass(env, env_ids, scale=(1.0, 1.0), body_names=None) -> None:
    """Scale every link's mass (or body_names') by a factor drawn per env and body."""
    ids = env.cmd.body_ids(body_names if body_names is not None else env.cmd.body_names)
    _hook(env, "set_body_mass_scale")(env_ids, ids, _uniform(env, (len(env_ids), len(ids)), scale))


def push_robot(env, env_ids, lin_vel_xy=(0.0, 0.0), lin_vel_z=(0.0, 0.0)) -> None:
    """Add a random root velocity (m/s, world frame): a shove."""
    n = len(env_ids)
    dv = torch.stack(
        (_uniform(env, (n,), lin_vel_xy), _uniform(env, (n,), lin_vel_xy), _uniform(env, (n,), lin_vel_z)),
        dim=-1,
    )
    _hook(env, "push")(env_ids, dv)


_EVENTS = {f.__name__: f for f in (physics_material, default_joint_offsets, torso_com, link_mass, push_robot)}


class EventManager:
    """Runs the active event terms; interval terms keep a per-env countdown (seconds)."""

    def __init__(self, terms: dict, *, level: int, num_envs: int, step_dt: float, device="cpu"):
        if not 0 <= int(level) <= MAX_LEVEL:
            raise ValueError(f"env.events.level must be in 0..{MAX_LEVEL}, got {level}")
        self.level, self.num_envs, self.step_dt = int(level), int(num_envs), float(step_dt)
        self.device = torch.device(device)
        self.terms: dict[str, list] = {m: [] for m in MODES}
        for name, spec in terms.items():
            if name not in _EVENTS:
                raise KeyError(f"unknown event term {name!r}; known event terms: {sorted(_EVENTS)}")
            mode = _field(spec, "mode", "reset")
            if mode not in MODES:
                raise ValueError(f"event {name!r}: mode {mode!r} is not one of {MODES}")
            if self.level < int(_field(spec, "min_level", 1)):
                continue
            rng = [float(v) for v in _field(spec, "interval_range_s", [4.0, 6.0])]
            self.terms[mode].append((name, _EVENTS[name], dict(_field(spec, "params", {}) or {}), rng))
        self._timers = torch.zeros(len(self.terms["interval"]), self.num_envs, device=self.device)

    @property
    def active(self) -> list[str]:
        return [t[0] for m in MODES for t in self.terms[m]]

    def startup(self, env) -> None:
        ids = torch.arange(self.num_envs, device=self.device)
        for _, fn, params, _ in self.terms["startup"]:
            fn(env, ids, **params)
        for k, (_, _, _, rng) in enumerate(self.terms["interval"]):
            self._timers[k] = _uniform(env, (self.num_envs,), rng)

    def reset(self, env, env_ids) -> None:
        for _, fn, params, _ in self.terms["reset"]:
            fn(env, env_ids, **params)

    def state_dict(self) -> dict:
        return {"timers": self._timers.clone()}

    def load_state_dict(self, state: dict) -> None:
        self._timers.copy_(state["timers"])

    def interval(self, env) -> None:
        if not self.terms["interval"]:
            return
        self._timers -= self.step_dt
        for k, (_, fn, params, rng) in enumerate(self.terms["interval"]):
            due = torch.nonzero(self._timers[k] <= 0).squeeze(-1)
            if len(due):
                fn(env, due, **params)
                self._timers[k, due] = _uniform(env, (len(due),), rng)
