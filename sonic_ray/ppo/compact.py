"""The compact rollout format: runners ship what cannot be recomputed, the learner rebuilds the rest.

A full rollout ships one float32 copy of every observation group per step (~14.7 kB per
transition at the demo's layout). Most of it is redundant:
- a group with a history (the policy's 10 frames) is rebuilt from its newest frame per step plus
  the history the rollout started with; a reset fills every slot with the episode's first frame,
  as `ObservationGroup.compute` does;
- reference terms (`REFERENCE_TERMS`: functions of the clip and frame) and anchor terms
  (`ANCHOR_TERMS`: the reference seen from the robot's anchor) are recomputed from the learner's
  own ReferenceTable through `envs.command.ReferenceView` by the observation terms' own code;
- the other terms of history-less groups (the critic's privileged extras) are shipped per term,
  as float16 offsets from the rollout's per-column mean for the groups in `float16_groups`.

Arrays of a compact rollout (besides actions, logp, action_mean/std, rewards, flags, encoder index,
final_critic_obs/final_index, which both formats share), time-major, R = T + 1 rows where the last
row is the state after the final step (the critic's bootstrap observation):
- "c/clip", "c/frame" (R,N) int32: the clip's index in the whole store, its frame;
- "c/anchor_pos" (R,N,3), "c/anchor_quat" (R,N,4) float32: the robot anchor the terms read;
- "c/<group>/frame" (T,N,k) and "c/<group>/history0" (H-1,N,k): a history group's frames;
- "c/<group>/<term>" (R,N,d) a shipped term; float16 with "c/<group>/<term>/mean" (d,) float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from sonic_ray.envs import observations as obs_terms
from sonic_ray.envs.command import ReferenceView
from sonic_ray.models import keys as K
from sonic_ray.ppo.batch import as_tensor

FORMATS = ("compact", "full")
PREFIX = "c/"
CLIP, FRAME = PREFIX + "clip", PREFIX + "frame"
ANCHOR_POS, ANCHOR_QUAT = PREFIX + "anchor_pos", PREFIX + "anchor_quat"
MEAN_SUFFIX = "/mean"
# Terms that read only the reference at the env's (clip, frame).
REFERENCE_TERMS = frozenset(
    {
        "command_multi_future",
        "smpl_joints_multi_future",
        "command_lower_body",
        "vr_3point_pos_local",
        "vr_3point_ori_local",
    }
)
# Terms that read the reference and the robot anchor's pose (shipped: 7 floats per step).
ANCHOR_TERMS = frozenset(
    {
        "motion_anchor_pos_b",
        "motion_anchor_ori_b",
        "motion_anchor_ori_b_multi_future",
        "smpl_root_ori_b_multi_future",
    }
)


def is_compact(data: dict) -> bool:
    return CLIP in data


def per_rollout(key: str) -> bool:
    """Keys that are one array per rollout, not per env (kept whole when a rollout is split)."""
    return key == K.ACTION_STD or key.endswith(MEAN_SUFFIX)


def _get(spec, name, default):
    return spec.get(name, default) if isinstance(spec, dict) else getattr(spec, name, default)


@dataclass(frozen=True)
class TermPlan:
    name: str
    params: dict
    scale: float
    recompute: bool


@dataclass(frozen=True)
class GroupPlan:
    name: str
    history_length: int
    terms: tuple[TermPlan, ...]

    @property
    def has_history(self) -> bool:
        return self.history_length > 1


def plan_groups(groups: dict[str, dict]) -> dict[str, GroupPlan]:
    """{obs key: group config} (envs.factory.observation_groups) -> what each group ships. A term is
    recomputed when it is a reference or anchor term of a group without history, and no noise is
    added to it (noise draws cannot be replayed)."""
    plans = {}
    for key, g in groups.items():
        h = int(_get(g, "history_length", 1))
        corrupt = bool(_get(g, "enable_corruption", False))
        terms = []
        for name, s in _get(g, "terms", {}).items():
            s = s or {}
            noisy = corrupt and float(_get(s, "noise", 0.0)) > 0
            recompute = h == 1 and not noisy and name in REFERENCE_TERMS | ANCHOR_TERMS
            terms.append(
                TermPlan(name, dict(_get(s, "params", {}) or {}), float(_get(s, "scale", 1.0)), recompute)
            )
        plans[key] = GroupPlan(key, h, tuple(terms))
    return plans


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu").numpy()


class CompactEncoder:
    """Runner side: fills the compact arrays of a T-step rollout from the env's observations.

    `record(buf, t, obs)` must be called with the observation the policy acts on, before
    `env.step` (the env's observation buffers are views its next step overwrites); `record(buf, T,
    obs)` once more after the last step (row T: the critic's bootstrap observation)."""

    def __init__(self, env, plans: dict[str, GroupPlan], *, float16_groups=()):
        self.env, self.plans = env, plans
        self.float16_groups = frozenset(float16_groups)
        unknown = self.float16_groups - set(plans)
        if unknown:
            raise ValueError(
                f"ray.rollout_float16: unknown observation groups {sorted(unknown)}; known: {sorted(plans)}"
            )
        self.store_index = env.cmd.table.store_index.to(torch.int32)

    def _columns(self, group: str) -> dict[str, slice]:
        dims = self.env.obs_manager.groups[group].term_dims
        out, lo = {}, 0
        for term, d in dims.items():
            out[term] = slice(lo, lo + d)
            lo += d
        return out

    @staticmethod
    def _put(buf: dict, key: str, rows: int, t: int, arr: np.ndarray) -> None:
        if key not in buf:
            buf[key] = np.empty((rows,) + arr.shape, dtype=arr.dtype)
        buf[key][t] = arr

    def record(
        self, buf: dict[str, np.ndarray], t: int, obs: dict[str, torch.Tensor], num_steps: int
    ) -> None:
        cmd, R = self.env.cmd, num_steps + 1
        self._put(buf, CLIP, R, t, _np(self.store_index[cmd.clip.cpu()]))
        self._put(buf, FRAME, R, t, _np(cmd.frame.to(torch.int32)))
        self._put(buf, ANCHOR_POS, R, t, _np(cmd.robot_anchor_pos_w))
        self._put(buf, ANCHOR_QUAT, R, t, _np(cmd.robot_anchor_quat_w))
        for key, plan in self.plans.items():
            x = obs[key]
            if plan.has_history:
                if t == num_steps:
                    continue
                k = x.shape[-1] // plan.history_length
                if t == 0:
                    hist = _np(x.reshape(x.shape[0], plan.history_length, k)[:, :-1].transpose(0, 1))
                    buf[PREFIX + key + "/history0"] = hist.copy()
                self._put(buf, PREFIX + key + "/frame", num_steps, t, _np(x[:, -k:]))
                continue
            cols = self._columns(key)
            for term in plan.terms:
                if not term.recompute:
                    self._put(buf, f"{PREFIX}{key}/{term.name}", R, t, _np(x[:, cols[term.name]]))

    def finish(self, buf: dict[str, np.ndarray]) -> None:
        """float16 offsets from the rollout's per-column mean for the shipped terms of float16 groups."""
        for key in self.float16_groups:
            if self.plans[key].has_history:
                continue
            for term in self.plans[key].terms:
                name = f"{PREFIX}{key}/{term.name}"
                if term.recompute or name not in buf:
                    continue
                x = buf[name]
                mean = x.reshape(-1, x.shape[-1]).mean(0, dtype=np.float64).astype(np.float32)
                buf[name] = (x - mean).astype(np.float16)
                buf[name + MEAN_SUFFIX] = mean


def rebuild_history(frames: torch.Tensor, history0: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """A history group's observations from its frames. frames (T,N,k) newest frame per step,
    history0 (H-1,N,k) the older frames of step 0's observation, starts (T,N) bool: step t is the
    first of an episode (the env reset before it) -> (T,N,H*k), H frames oldest first, each slot
    before an episode's first step holding that first frame (what the env's reset does)."""
    T, N, k = frames.shape
    H = history0.shape[0] + 1
    ext = torch.cat((history0, frames))  # (H-1+T, N, k); step t's frame at H-1+t
    steps = torch.arange(T, device=frames.device)[:, None].expand(T, N)
    # Index into ext of the latest episode start at or before t (0: none inside this rollout).
    start_at = torch.where(starts, steps + H - 1, torch.zeros_like(steps))
    first = torch.cummax(start_at, dim=0).values  # (T,N)
    slots = steps[..., None] + torch.arange(H, device=frames.device)  # (T,N,H): t + j, in ext index
    idx = torch.maximum(slots, first[..., None])
    n = torch.arange(N, device=frames.device)[None, :, None].expand_as(idx)
    return ext[idx, n].reshape(T, N, H * k)


class ObservationRebuilder:
    """Learner side: a compact rollout -> the full-format arrays (every `obs/<group>` and
    `last_critic_obs`), equal to what the env produced. `table` is a ReferenceTable holding every
    clip the runners sampled (looked up by store index)."""

    def __init__(
        self,
        table,
        plans: dict[str, GroupPlan],
        *,
        anchor_index: int,
        horizons: dict[str, torch.Tensor],
        lower_body_joint_ids: torch.Tensor,
        device="cpu",
    ):
        self.table, self.plans, self.device = table, plans, torch.device(device)
        self.anchor_index, self.horizons = anchor_index, horizons
        self.lower_body_joint_ids = lower_body_joint_ids
        store = table.store_index.to(torch.long)
        self.local_clip = torch.full((int(store.max()) + 1,), -1, dtype=torch.long)
        self.local_clip[store] = torch.arange(len(store))
        self.local_clip = self.local_clip.to(table.clip_start.device)
        self.fns = {
            t.name: getattr(obs_terms, t.name) for p in plans.values() for t in p.terms if t.recompute
        }

    def _tensor(self, data: dict, key: str) -> torch.Tensor:
        x = as_tensor(data[key], self.device)
        mean = data.get(key + MEAN_SUFFIX)
        if mean is not None:
            x = as_tensor(mean, self.device) + x.float()
        return x

    def expand(self, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not is_compact(data):
            return data
        out = {k: v for k, v in data.items() if not k.startswith(PREFIX)}
        T, N = data[K.REWARDS].shape
        R = T + 1
        done = np.logical_or(data[K.TERMINATED], data[K.TRUNCATED])
        starts = torch.as_tensor(np.concatenate((np.zeros((1, N), bool), done[:-1])), device=self.device)
        clip = self.local_clip[as_tensor(data[CLIP].reshape(-1), self.local_clip.device).long()]
        if bool((clip < 0).any()):
            raise ValueError(
                "compact rollout: clips missing from the learner's motion table "
                "(its shard must hold every clip of the runners that feed it)"
            )
        self.table.ensure(clip)  # a CachedReference computes the rollout's clips (no-op for a full table)
        env = SimpleNamespace(
            cmd=ReferenceView(
                self.table,
                clip=clip.to(self.table.clip_start.device),
                frame=as_tensor(data[FRAME].reshape(-1), self.table.clip_start.device).long(),
                robot_anchor_pos_w=self._tensor(data, ANCHOR_POS).reshape(R * N, 3),
                robot_anchor_quat_w=self._tensor(data, ANCHOR_QUAT).reshape(R * N, 4),
                anchor_index=self.anchor_index,
                horizons=self.horizons,
                lower_body_joint_ids=self.lower_body_joint_ids,
            )
        )
        cache: dict[tuple, torch.Tensor] = {}
        for key, plan in self.plans.items():
            if plan.has_history:
                x = rebuild_history(
                    self._tensor(data, f"{PREFIX}{key}/frame"),
                    self._tensor(data, f"{PREFIX}{key}/history0"),
                    starts,
                )
                out[K.OBS_PREFIX + key] = _np(x)
                continue
            parts = []
            for term in plan.terms:
                if term.recompute:
                    ck = (term.name, repr(sorted(term.params.items())))
                    v = cache.get(ck)
                    if v is None:
                        v = cache[ck] = self.fns[term.name](env, **term.params)
                    parts.append(v * term.scale if term.scale != 1.0 else v)
                else:
                    v = self._tensor(data, f"{PREFIX}{key}/{term.name}")
                    parts.append(v.reshape(R * N, -1))
            x = torch.cat(parts, dim=-1).reshape(R, N, -1)
            out[K.OBS_PREFIX + key] = _np(x[:T])
            if key == K.CRITIC:
                out[K.LAST_CRITIC_OBS] = _np(x[T])
        return out
