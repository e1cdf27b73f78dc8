"""Observation, reward and termination managers: turn named terms + params into batched tensors.

Terms are looked up by name in the term modules (observations.py, rewards.py, terminations.py);
an unknown name is an error listing the known ones. Managers take explicit term tables
`{name: spec}` (plain dicts or config dataclasses with the same fields), never a whole config.
"""

from __future__ import annotations

import inspect
from types import ModuleType

import torch

from sonic_ray.envs import observations as obs_terms
from sonic_ray.envs import rewards as reward_terms
from sonic_ray.envs import terminations as term_terms


def _field(spec, name: str, default):
    if isinstance(spec, dict):
        return spec.get(name, default)
    return getattr(spec, name, default)


def resolve_term(module: ModuleType, name: str, kind: str):
    fn = getattr(module, name, None)
    if fn is None or name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
        known = sorted(
            n
            for n, f in vars(module).items()
            if inspect.isfunction(f) and f.__module__ == module.__name__ and not n.startswith("_")
        )
        raise KeyError(f"unknown {kind} term {name!r}; known {kind} terms: {known}")
    return fn


class ObservationGroup:
    """One observation group: its terms concatenated in config order, optional uniform noise
    (half-width per term) and scale, and a history of `history_length` steps.

    Output (N, H*k): H frames oldest first, each frame the concatenation of the terms (k wide).
    The history is a ring buffer (N, H, k); a reset fills all H slots of an env with its first
    observation, so a new episode never sees the previous one.
    """

    def __init__(
        self,
        name: str,
        terms: dict,
        *,
        history_length: int = 1,
        enable_corruption: bool = False,
        num_envs: int,
        device="cpu",
    ):
        if history_length < 1:
            raise ValueError(f"observation group {name!r}: history_length must be >= 1, got {history_length}")
        self.name, self.num_envs, self.device = name, num_envs, torch.device(device)
        self.history_length, self.enable_corruption = int(history_length), bool(enable_corruption)
        self.terms = [
            (
                t,
                resolve_term(obs_terms, t, "observation"),
                dict(_field(s, "params", {}) or {}),
                float(_field(s, "noise", 0.0)),
                float(_field(s, "scale", 1.0)),
            )
            for t, s in terms.items()
        ]
        if not self.terms:
            raise ValueError(f"observation group {name!r} has no terms")
        # (term, params) identity across groups: the manager computes a term shared by several
        # groups (e.g. joint_pos_rel in policy and critic) once per compute/peek.
        self._term_keys = [(t, repr(sorted(p.items()))) for t, _, p, _, _ in self.terms]
        self.term_dims: dict[str, int] = {}
        self._buf: torch.Tensor | None = None
        self._ptr = 0
        self._noise = self._scale = None

    @property
    def dim(self) -> int:
        return self.history_length * sum(self.term_dims.values())

    def _frame(self, env, corrupt: bool, raw: torch.Tensor | None = None) -> torch.Tensor:
        """This step's frame (N, k): `raw` (the terms' concatenation, `raw_frame`; computed here when
        None) with noise and scale applied."""
        x = self.raw_frame(env) if raw is None else raw
        if corrupt and self.enable_corruption and self._noise is not None:
            u = torch.rand(x.shape, generator=env.generator, device=x.device)
            x = x + (2.0 * u - 1.0) * self._noise
        if self._scale is not None:
            x = x * self._scale
        return x

    def raw_frame(self, env, cache: dict | None = None) -> torch.Tensor:
        """The terms of this step, concatenated (N, k), before noise and scale. cache: {(term, params):
        value} shared by the groups of one manager call (terms are pure functions of the env state;
        their values are never mutated)."""
        if cache is None:
            parts = [fn(env, **params) for _, fn, params, _, _ in self.terms]
        else:
            parts = []
            for key, (_, fn, params, _, _) in zip(self._term_keys, self.terms):
                v = cache.get(key)
                if v is None:
                    v = cache[key] = fn(env, **params)
                parts.append(v)
        if not self.term_dims:
            self._init_layout(parts)
        return torch.cat(parts, dim=-1)

    def _init_layout(self, parts) -> None:
        noise, scale = [], []
        for (t, _, _, nz, sc), p in zip(self.terms, parts):
            if p.dim() != 2 or p.shape[0] != self.num_envs:
                raise ValueError(
                    f"observation term {t!r} returned shape {tuple(p.shape)}, expected ({self.num_envs}, k)"
                )
            self.term_dims[t] = int(p.shape[1])
            noise.append(torch.full((p.shape[1],), nz))
            scale.append(torch.full((p.shape[1],), sc))
        noise, scale = torch.cat(noise).to(self.device), torch.cat(scale).to(self.device)
        self._noise = noise if bool((noise > 0).any()) else None
        self._scale = scale if bool((scale != 1).any()) else None
        k = sum(self.term_dims.values())
        self._buf = torch.zeros(self.num_envs, self.history_length, k, device=self.device)

    def compute(
        self, env, corrupt: bool, reset_ids: torch.Tensor | None = None, raw: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Push this step's frame for every env and return (N, H*k). Envs in reset_ids start a new
        episode: all H slots of their history become this frame."""
        x = self._frame(env, corrupt, raw)
        if self.history_length == 1:
            return x
        self._buf[:, self._ptr] = x
        self._ptr = (self._ptr + 1) % self.history_length
        if reset_ids is not None and len(reset_ids):
            self._buf.index_copy_(
                0, reset_ids, x.index_select(0, reset_ids)[:, None].expand(-1, self.history_length, -1)
            )
        return self._ordered()

    def peek(
        self, env, env_ids: torch.Tensor, corrupt: bool, raw: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(E, H*k) what `compute` would return for env_ids now, without pushing the history:
        the final observation of episodes about to be reset."""
        x = self._frame(env, corrupt, raw).index_select(0, env_ids)
        if self.history_length == 1:
            return x
        hist = self._ordered().reshape(self.num_envs, self.history_length, -1).index_select(0, env_ids)
        return torch.cat((hist[:, 1:], x[:, None]), dim=1).reshape(len(env_ids), -1)

    def state_dict(self) -> dict:
        return {"buf": None if self._buf is None else self._buf.clone(), "ptr": self._ptr}

    def load_state_dict(self, state: dict) -> None:
        if state["buf"] is not None:
            if self._buf is None or self._buf.shape != state["buf"].shape:
                raise ValueError(
                    f"observation group {self.name!r}: history of shape {tuple(state['buf'].shape)}, "
                    f"expected {None if self._buf is None else tuple(self._buf.shape)}"
                )
            self._buf.copy_(state["buf"])
        self._ptr = int(state["ptr"])

    def _ordered(self) -> torch.Tensor:
        if self._ptr == 0:
            return self._buf.reshape(self.num_envs, -1)
        return torch.cat((self._buf[:, self._ptr :], self._buf[:, : self._ptr]), dim=1).reshape(
            self.num_envs, -1
        )


class ObservationManager:
    """Groups by output key (e.g. "policy", "critic", "tokenizer_g1")."""

    def __init__(self, groups: dict[str, ObservationGroup]):
        self.groups = groups

    def frames(self, env, keys=None) -> dict[str, torch.Tensor]:
        """Raw frames (terms concatenated, before noise) of the groups `keys` (None: all) for the
        current env state."""
        cache: dict = {}  # one call = one env state: a term shared by groups is computed once
        return {k: g.raw_frame(env, cache) for k, g in self.groups.items() if keys is None or k in keys}

    def compute(self, env, corrupt: bool = True, reset_ids=None) -> dict[str, torch.Tensor]:
        raw = self.frames(env)
        return {k: g.compute(env, corrupt, reset_ids, raw=raw[k]) for k, g in self.groups.items()}

    def peek(self, env, env_ids, corrupt: bool = True, keys=None) -> dict[str, torch.Tensor]:
        """What `compute` would return now for env_ids, for the groups `keys` (None: all)."""
        raw = self.frames(env, keys)
        return {k: self.groups[k].peek(env, env_ids, corrupt, raw=v) for k, v in raw.items()}

    def dims(self) -> dict[str, int]:
        return {k: g.dim for k, g in self.groups.items()}

    def state_dict(self) -> dict:
        return {k: g.state_dict() for k, g in self.groups.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, g in self.groups.items():
            g.load_state_dict(state[k])


class RewardManager:
    """Sum of weight x step_dt x term; per-term episode sums for `reward/<term>` logging.

    Terms with weight 0 are not computed. `reward/<term>` is the mean episode sum over the
    episodes that ended since the last `pop_metrics()`.
    """

    def __init__(self, terms: dict, *, step_dt: float, num_envs: int, device="cpu"):
        self.step_dt = float(step_dt)
        self.terms = [
            (
                t,
                resolve_term(reward_terms, t, "reward"),
                float(_field(s, "weight", 0.0)),
                dict(_field(s, "params", {}) or {}),
            )
            for t, s in terms.items()
        ]
        self.terms = [x for x in self.terms if x[2] != 0.0]
        dev = torch.device(device)
        self.episode_sums = torch.zeros(len(self.terms), num_envs, device=dev)
        self._ended_sums = torch.zeros(len(self.terms), device=dev)
        self._ended = 0

    @property
    def names(self) -> list[str]:
        return [t for t, *_ in self.terms]

    def compute(self, env) -> tuple[torch.Tensor, torch.Tensor]:
        """-> total (N,), per-term weighted values (T, N)."""
        vals = torch.stack([fn(env, **params) * (w * self.step_dt) for _, fn, w, params in self.terms])
        return vals.sum(0), vals

    def accumulate(self, vals: torch.Tensor) -> None:
        self.episode_sums += vals

    def episodes_ended(self, env_ids: torch.Tensor) -> None:
        if len(env_ids):
            self._ended_sums += self.episode_sums[:, env_ids].sum(1)
            self._ended += int(len(env_ids))
            self.episode_sums[:, env_ids] = 0.0

    def state_dict(self) -> dict:
        return {
            "names": self.names,
            "episode_sums": self.episode_sums.clone(),
            "ended_sums": self._ended_sums.clone(),
            "ended": self._ended,
        }

    def load_state_dict(self, state: dict) -> None:
        _check_terms("reward", state, self.names, state["episode_sums"].shape[0])
        self.episode_sums.copy_(state["episode_sums"])
        self._ended_sums.copy_(state["ended_sums"])
        self._ended = int(state["ended"])

    def pop_metrics(self) -> dict[str, float]:
        if self._ended == 0:
            return {}
        means = (self._ended_sums / self._ended).tolist()
        self._ended_sums.zero_()
        self._ended = 0
        return {f"reward/{t}": v for t, v in zip(self.names, means)}


def _check_terms(kind: str, state: dict, names: list[str], saved_len: int) -> None:
    """A saved manager state fits only the same terms: ValueError naming the difference (a state
    saved before names were kept is checked by its length)."""
    saved = state.get("names")
    if saved is not None and list(saved) != list(names):
        added = [n for n in names if n not in saved]
        removed = [n for n in saved if n not in names]
        raise ValueError(
            f"{kind} terms differ from the saved state's: added {added}, removed {removed}"
            + ("" if added or removed else f" (order {list(saved)} -> {list(names)})")
        )
    if saved_len != len(names):
        raise ValueError(f"{kind} terms: the saved state has {saved_len}, this env {len(names)}")


class TerminationManager:
    """terminated (failure, no bootstrap) and truncated (time_out terms: bootstrap) kept apart.

    An env both failing and timing out in the same step is terminated (the failure wins).
    Counts per term since the last `pop_metrics()` are logged as `termination/<term>`.
    """

    def __init__(self, terms: dict, *, device="cpu"):
        self.terms = [
            (
                t,
                resolve_term(term_terms, t, "termination"),
                bool(_field(s, "time_out", False)),
                dict(_field(s, "params", {}) or {}),
            )
            for t, s in terms.items()
        ]
        if not self.terms:
            raise ValueError("no termination terms: at least a time_out term is needed to end episodes")
        dev = torch.device(device)
        self.counts = torch.zeros(len(self.terms), dtype=torch.long, device=dev)
        self._fail_ids = torch.tensor(
            [i for i, x in enumerate(self.terms) if not x[2]], dtype=torch.long, device=dev
        )
        self._to_ids = torch.tensor(
            [i for i, x in enumerate(self.terms) if x[2]], dtype=torch.long, device=dev
        )

    def compute(self, env) -> tuple[torch.Tensor, torch.Tensor]:
        """-> terminated (N,) bool, truncated (N,) bool."""
        hits = torch.stack([fn(env, **params) for _, fn, _, params in self.terms])  # (T, N)
        self.counts += hits.sum(1)
        terminated = hits[self._fail_ids].any(0)
        truncated = hits[self._to_ids].any(0) & ~terminated
        return terminated, truncated

    def state_dict(self) -> dict:
        return {"names": [t for t, *_ in self.terms], "counts": self.counts.clone()}

    def load_state_dict(self, state: dict) -> None:
        _check_terms("termination", state, [t for t, *_ in self.terms], state["counts"].shape[0])
        self.counts.copy_(state["counts"])

    def pop_metrics(self) -> dict[str, float]:
        out = {f"termination/{t}": float(c) for (t, *_), c in zip(self.terms, self.counts.tolist())}
        self.counts.zero_()
        return out
