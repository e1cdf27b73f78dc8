"""TrackingEnv: N robots following reference motions in a batched simulator. Torch in and out.

One step (mjlab/BeyondMimic order): interval events (pushes); actions -> PD targets
(default pose + default-joint offsets + action_scale * action) -> simulator (decimation
inside); terminations and rewards against the reference frame the policy was shown; the command
advances one frame; truncated envs' FINAL observation is kept in info (for bootstrapping); ended
envs are reset (new clip/start/encoder, sim reset to the noisy reference pose); then every env's
observation (a reset env's history is filled with its new episode's first frame). A simulator blow-up
(non-finite state) ends that env as terminated with reward 0,
is counted (`env/nonfinite_resets`), and never raises.
"""

from __future__ import annotations

import numpy as np
import torch

from sonic_ray.envs.command import MotionCommand
from sonic_ray.envs.events import EventManager
from sonic_ray.envs.managers import ObservationGroup, ObservationManager, RewardManager, TerminationManager
from sonic_ray.models import keys as K


class TrackingEnv:
    """Batched motion tracking MDP.

    Obs dict: one (N, k) float tensor per observation group key ("policy", "critic",
    "tokenizer_g1", "tokenizer_smpl", "tokenizer_teleop") plus "encoder_index" (N,) long (index
    into K.ENCODER_NAMES, drawn per env per episode).
    """

    def __init__(
        self,
        *,
        sim,
        robot_spec,
        table,
        sampler,
        num_envs: int,
        step_dt: float,
        episode_length_s: float,
        observations: dict,
        rewards: dict,
        terminations: dict,
        events: dict | None = None,
        event_level: int = 0,
        command: dict | None = None,
        soft_joint_limit_factor: float = 0.9,
        seed: int = 0,
        device="cpu",
        compile: bool = False,
        action_clip: float = 100.0,
    ):
        self.device = torch.device(device)
        self.num_envs, self.step_dt, self.sim, self.robot_spec = (
            int(num_envs),
            float(step_dt),
            sim,
            robot_spec,
        )
        robot = robot_spec
        self.action_clip = float(action_clip)  # actions clipped to +-action_clip: rewards stay finite
        self.max_episode_length = int(round(episode_length_s / step_dt))
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        t = lambda a: torch.tensor(np.array(a), dtype=torch.float32, device=self.device)  # noqa: E731
        self.default_joint_pos, self.action_scale = t(robot.default_joint_pos), t(robot.action_scale)
        lo, hi = t(robot.joint_lower), t(robot.joint_upper)
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * soft_joint_limit_factor
        self.joint_soft_lower, self.joint_soft_upper = mid - half, mid + half
        self.feet_bodies, self.end_effector_bodies = robot.feet_bodies, robot.end_effector_bodies
        self.undesired_contact_bodies = robot.undesired_contact_bodies
        self.tracked_bodies, self.joint_names = robot.tracked_body_names, robot.joint_names
        point_ids, point_offsets = robot.point_table(robot.reward_points)
        self.reward_point_ids = torch.as_tensor(point_ids, dtype=torch.long, device=self.device)
        self.reward_point_offsets = t(point_offsets)
        self.action_dim = robot.num_joints
        n, a = self.num_envs, self.action_dim
        self.action = torch.zeros(n, a, device=self.device)
        self.prev_action = torch.zeros(n, a, device=self.device)
        self.joint_offsets = torch.zeros(n, a, device=self.device)
        self.episode_length = torch.zeros(n, dtype=torch.long, device=self.device)
        # Reset joint noise is clipped to the soft limits, as gear_sonic's reset does.
        self.cmd = MotionCommand(
            table,
            sampler,
            num_envs=n,
            anchor_body=robot.anchor_body,
            joint_names=robot.joint_names,
            joint_lower=self.joint_soft_lower.tolist(),
            joint_upper=self.joint_soft_upper.tolist(),
            step_dt=step_dt,
            device=self.device,
            **(command or {}),
        )
        self.obs_manager = ObservationManager(
            {
                key: ObservationGroup(
                    key,
                    g["terms"],
                    history_length=g.get("history_length", 1),
                    enable_corruption=g.get("enable_corruption", False),
                    num_envs=n,
                    device=self.device,
                )
                for key, g in observations.items()
            }
        )
        self.reward_manager = RewardManager(rewards, step_dt=step_dt, num_envs=n, device=self.device)
        self.termination_manager = TerminationManager(terminations, device=self.device)
        self.event_manager = EventManager(
            events or {}, level=event_level, num_envs=n, step_dt=step_dt, device=self.device
        )
        self.corruption = True
        # Groups of info["final_obs"]: bootstrapping a truncated episode needs only the critic's
        # observation, and computing every group for it cost ~1.6 ms of ~9 per step at N=256.
        # None: all groups (what the gymnasium adapter asks for).
        self.final_obs_groups: tuple[str, ...] | None = ("critic",) if "critic" in observations else None
        self._stats = {"episodes": 0, "length_sum": 0, "nonfinite": 0, "terminated": 0, "truncated": 0}
        self._outcome = TrackingEnv._outcome_eager
        self.event_manager.startup(self)
        self.obs = self.reset()
        if compile:
            self._compile()

    # ---- public API -------------------------------------------------------------------------
    def reset(self) -> dict[str, torch.Tensor]:
        """Reset every env to a freshly drawn episode; returns the first observation."""
        ids = torch.arange(self.num_envs, device=self.device)
        self._reset_envs(ids)
        self.obs = self.obs_manager.compute(self, self.corruption, reset_ids=ids)
        self.obs[K.ENCODER_INDEX] = self.cmd.encoder_index.clone()
        return self.obs

    def step(self, actions: torch.Tensor):
        """actions (N, A) -> obs dict, reward (N,), terminated (N,) bool, truncated (N,) bool, info.

        info: "done_ids" (E,) long envs whose episode ended this step (they are already reset);
        "truncated_ids" (E',) long the truncated ones (clip end, time-out) and "final_obs"
        {key: (E', k)} their last observation of the groups in `final_obs_groups` (default: the
        critic's, what bootstrapping needs; None: all), plus encoder_index (terminated episodes
        need none, so none is computed); "episode_length" (E,) long lengths of the ended episodes;
        "nonfinite_ids" (K,) long envs whose
        simulation blew up (terminated, reward 0). Aggregates: `metrics()`.
        """
        if actions.shape != (self.num_envs, self.action_dim):
            raise ValueError(
                f"TrackingEnv.step: actions of shape {tuple(actions.shape)}, "
                f"expected ({self.num_envs}, {self.action_dim})"
            )
        self.event_manager.interval(self)
        self.prev_action = self.action
        self.action = torch.nan_to_num(
            actions.to(self.device, torch.float32), nan=0.0, posinf=0.0, neginf=0.0
        ).clamp_(-self.action_clip, self.action_clip)
        self.prev_joint_vel = self.robot.joint_vel.clone()
        targets = self.default_joint_pos + self.joint_offsets + self.action_scale * self.action
        self.sim.step(targets)
        self.episode_length += 1
        bad = self._as_ids(self.sim.nonfinite_envs())
        self.cmd.set_robot(self.robot)
        terminated, truncated, reward, vals = self._outcome(self)
        if len(bad):
            terminated[bad], truncated[bad] = True, False
            vals[:, bad] = 0.0
            reward[bad] = 0.0
            self._stats["nonfinite"] += len(bad)
        self.reward_manager.accumulate(vals)
        done_ids = torch.nonzero(terminated | truncated).squeeze(-1)
        self.cmd.sampler_record(done_ids, terminated)
        self.cmd.advance()
        self.cmd.update_reference()
        info = {"done_ids": done_ids, "nonfinite_ids": bad, "final_obs": {}}
        info["truncated_ids"] = trunc_ids = torch.nonzero(truncated).squeeze(-1)
        if len(trunc_ids):  # only truncated episodes bootstrap: their last observation, before reset
            info["final_obs"] = self.obs_manager.peek(
                self, trunc_ids, self.corruption, keys=self.final_obs_groups
            )
            info["final_obs"][K.ENCODER_INDEX] = self.cmd.encoder_index[trunc_ids].clone()
        info["episode_length"] = self.episode_length[done_ids].clone()
        if len(done_ids):
            self._end_episodes(done_ids, terminated, truncated)
            self._reset_envs(done_ids)
        obs = self.obs_manager.compute(self, self.corruption, reset_ids=done_ids)
        obs[K.ENCODER_INDEX] = self.cmd.encoder_index.clone()
        self.obs = obs
        return obs, reward, terminated, truncated, info

    def start_evaluation(self, sampler, *, encoder: str, max_episode_length: int) -> dict[str, torch.Tensor]:
        """Switch to evaluation and reset every env: episodes start where `sampler` (a StartSampler,
        e.g. given clips from frame 0) says, every episode uses `encoder`, observations carry no
        noise, and an episode may last `max_episode_length` steps (set it past the longest clip so
        only a failure or the clip's end stops it). Returns the first observation."""
        if encoder not in K.ENCODER_NAMES:
            raise ValueError(
                f"start_evaluation: unknown encoder {encoder!r}; expected one of {K.ENCODER_NAMES}"
            )
        self.cmd.sampler = sampler
        self.cmd.encoder_probs = torch.tensor(
            [float(n == encoder) for n in K.ENCODER_NAMES], device=self.device
        )
        self.corruption = False
        self.max_episode_length = int(max_episode_length)
        return self.reset()

    def obs_dims(self) -> dict[str, int]:
        """Width of each observation group (encoder_index: 1, an integer per env)."""
        return {**self.obs_manager.dims(), K.ENCODER_INDEX: 1}

    def metrics(self) -> dict[str, float]:
        """Aggregates since the last call: env/episode_length (mean, steps), env/episodes,
        env/terminated, env/truncated, env/success_rate (episodes that ended without a failure:
        truncated / episodes), env/nonfinite_resets, reward/<term> (mean episode sum),
        termination/<term> (counts). The start sampler reports its own sampler/* metrics
        (`sampler.metrics()`, merged in by the env runner and the in-process trainer)."""
        s = self._stats
        out = {
            "env/episodes": float(s["episodes"]),
            "env/terminated": float(s["terminated"]),
            "env/truncated": float(s["truncated"]),
            "env/nonfinite_resets": float(s["nonfinite"]),
        }
        if s["episodes"]:
            out["env/episode_length"] = s["length_sum"] / s["episodes"]
            out["env/success_rate"] = s["truncated"] / s["episodes"]
        out.update(self.reward_manager.pop_metrics())
        out.update(self.termination_manager.pop_metrics())
        self._stats = dict.fromkeys(s, 0)
        return out

    # ---- snapshot (exact resume) -------------------------------------------------------------
    _TENSORS = ("action", "prev_action", "joint_offsets", "episode_length", "prev_joint_vel")

    def state_dict(self) -> dict:
        """Everything the following steps depend on: the env's RNG, the simulator snapshot, episode
        buffers (clips, frames, actions, step counters, observation histories, reward sums, event
        timers), the start sampler, pending metrics and the current observation. A fresh env of the
        same config that loads it steps exactly like this one."""
        get = getattr(self.sim, "get_state", None)
        if get is None:
            raise NotImplementedError(f"{type(self.sim).__name__} cannot snapshot its state (no get_state)")
        return {
            "num_envs": self.num_envs,
            "generator": self.generator.get_state(),
            "sim": get(),
            "env": {k: getattr(self, k).clone() for k in self._TENSORS},
            "cmd": self.cmd.state_dict(),
            "observations": self.obs_manager.state_dict(),
            "rewards": self.reward_manager.state_dict(),
            "terminations": self.termination_manager.state_dict(),
            "events": self.event_manager.state_dict(),
            "stats": dict(self._stats),
            "obs": {k: v.clone() for k, v in self.obs.items()},
            "corruption": self.corruption,
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state["num_envs"]) != self.num_envs:
            raise ValueError(
                f"env state for {state['num_envs']} envs, this env has {self.num_envs} "
                "(env.num_envs changed since the checkpoint?)"
            )
        self.generator.set_state(state["generator"])
        self.sim.set_state(state["sim"])
        for k, v in state["env"].items():
            setattr(self, k, v.clone().to(self.device))
        self.cmd.load_state_dict(state["cmd"])
        self.obs_manager.load_state_dict(state["observations"])
        self.reward_manager.load_state_dict(state["rewards"])
        self.termination_manager.load_state_dict(state["terminations"])
        self.event_manager.load_state_dict(state["events"])
        self._stats = dict(state["stats"])
        self.obs = {k: v.clone().to(self.device) for k, v in state["obs"].items()}
        self.corruption = bool(state["corruption"])
        self.cmd.set_robot(self.robot)

    @property
    def robot(self):
        return self.sim.state

    @property
    def encoder_names(self) -> tuple[str, ...]:
        return K.ENCODER_NAMES

    def close(self) -> None:
        close = getattr(self.sim, "close", None)
        if close is not None:
            close()

    # ---- internals --------------------------------------------------------------------------
    @staticmethod
    def _outcome_eager(env) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Terminations and rewards of the state just stepped: terminated, truncated, reward, vals."""
        terminated, truncated = env.termination_manager.compute(env)
        reward, vals = env.reward_manager.compute(env)
        return terminated, truncated, reward, vals

    def _compile(self) -> None:
        """torch.compile the terminations + rewards of a step: ~150 small tensor ops fused into a few
        kernels (measured at N=64 on CPU: 1.5 -> 0.33 ms). The observation terms are left eager:
        mostly gathers and copies, which compiled CPU code did not make faster."""
        from torch._dynamo.exc import BackendCompilerFailed

        try:
            from torch._inductor.exc import InductorError  # torch >= 2.6
        except ImportError:
            InductorError = BackendCompilerFailed
        compiled = torch.compile(TrackingEnv._outcome_eager, dynamic=False)
        failures = (BackendCompilerFailed, InductorError)

        def first_call(env):  # compiling happens here: say what to do if it cannot
            try:
                out = compiled(env)
            except failures as e:
                raise RuntimeError(
                    f"env.compile=true: torch.compile could not build the step's terminations "
                    f"and rewards ({type(e).__name__}); it needs a C++ compiler on CPU (Triton "
                    "on CUDA). Set env.compile=false to run them eagerly."
                ) from e
            self._outcome = compiled
            return out

        self._outcome = first_call

    def _as_ids(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, device=self.device)
        if x.dtype == torch.bool:
            return torch.nonzero(x).squeeze(-1)
        return x.to(torch.long).reshape(-1)

    def _end_episodes(self, ids, terminated, truncated) -> None:
        self._stats["episodes"] += len(ids)
        self._stats["length_sum"] += int(self.episode_length[ids].sum())
        self._stats["terminated"] += int(terminated[ids].sum())
        self._stats["truncated"] += int(truncated[ids].sum())
        self.reward_manager.episodes_ended(ids)

    def _reset_envs(self, ids: torch.Tensor) -> None:
        state = self.cmd.resample(ids, self.generator)
        self.sim.reset(
            ids,
            root_pos=state["root_pos_w"],
            root_quat=state["root_quat_w"],
            root_lin_vel=state["root_lin_vel_w"],
            root_ang_vel=state["root_ang_vel_w"],
            joint_pos=state["joint_pos"],
            joint_vel=state["joint_vel"],
        )
        self.episode_length[ids] = 0
        self.action[ids] = 0.0
        self.prev_action[ids] = 0.0
        self.event_manager.reset(self, ids)
        self.cmd.update_reference(ids)
        self.cmd.set_robot(self.robot)
        self.prev_joint_vel = self.robot.joint_vel.clone()
