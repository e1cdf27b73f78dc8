"""Typed configuration: the one shape every YAML preset in `configs/` must compose into.

OmegaConf merges the composed YAML into these dataclasses, which rejects unknown keys and wrong
types with the full key path; `sonic_ray.config.compose.validate` then checks values that types
cannot (levels >= 2, positive counts, probabilities). Components never receive this object whole: the
entry points unpack the fields they need into keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RobotConfig:
    name: str = "g1"
    # An external MJCF of the same robot (joint names and order are checked against the table).
    mjcf_path: str | None = None


@dataclass
class MotionsConfig:
    # Path to a motion store (Parquet). Empty: the embedded synthetic set, built on first use.
    store: str = ""
    # Where the embedded synthetic set is cached when `store` is empty.
    synth_cache: str = "runs/motions/synth.parquet"
    control_fps: float = 50.0
    # How a runner holds its shard's reference: "table" precomputes every control-rate frame
    # (envs/reference.py, ~1.9 kB a frame); "cached" keeps the stored arrays and computes a clip's
    # frames when an env starts it, into a cache of cache_frames rows (envs/cached_reference.py);
    # "window" keeps the stored arrays and window_frames rows per env, refilled as the env moves
    # (envs/window_reference.py: memory N x window_frames rows whatever the store's size;
    # root/joint/anchor keys on all of them, the FK keys computed lazily window_full_frames ahead
    # at a time, body velocities only at each env's frame; the learner's rebuilder then uses the
    # cached clip arena).
    reference: str = "table"
    cache_frames: int = 16384
    window_frames: int = 64
    window_full_frames: int = 12


@dataclass
class SimConfig:
    backend: str = "mujoco"  # mujoco | mujoco_warp | isaaclab (Python 3.12: make isaaclab-setup)
    timestep: float = 0.005
    decimation: int = 4
    num_threads: int = 1  # MuJoCo CPU stepping threads (the warp backend runs on `device`)


@dataclass
class ObsTermConfig:
    noise: float = 0.0  # uniform noise half-width added when corruption is on
    scale: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ObsGroupConfig:
    terms: dict[str, ObsTermConfig] = field(default_factory=dict)
    history_length: int = 1
    enable_corruption: bool = False


@dataclass
class ObservationsConfig:
    policy: ObsGroupConfig = field(default_factory=ObsGroupConfig)
    critic: ObsGroupConfig = field(default_factory=ObsGroupConfig)
    # One group per encoder (g1, smpl, teleop): the tokenizer inputs.
    tokenizer: dict[str, ObsGroupConfig] = field(default_factory=dict)


@dataclass
class RewardTermConfig:
    weight: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TerminationTermConfig:
    # A time-out ends the episode without failure: it bootstraps (truncation), never counts as a fall.
    time_out: bool = False
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventTermConfig:
    mode: str = "reset"  # startup | reset | interval
    min_level: int = 1  # active when env.events.level >= min_level
    interval_range_s: list[float] = field(default_factory=lambda: [4.0, 6.0])
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventsConfig:
    level: int = 0  # domain randomisation level 0 (none) .. 4 (all)
    terms: dict[str, EventTermConfig] = field(default_factory=dict)


@dataclass
class MotionCommandConfig:
    num_future_frames: int = 10
    future_dt: float = 0.1
    smpl_num_future_frames: int = 10
    smpl_future_dt: float = 0.02
    # Unnormalised probabilities of each encoder being drawn for an env at episode start.
    encoder_sample_probs: dict[str, float] = field(
        default_factory=lambda: {"g1": 1.0, "teleop": 1.0, "smpl": 1.0}
    )
    reset_pose_noise: dict[str, list[float]] = field(default_factory=dict)
    # Start-frame sampling (sonic_ray/envs/sampler.py): "uniform" over frames, or SONIC's "adaptive"
    # (bins of frames weighted by their failure rate, capped at failure_rate_cap x the mean rate,
    # mixed with a uniform share, start moved back 0..pre_failure_window_s before the failure bin).
    sampler: str = "adaptive"
    bin_size_frames: int = 50
    failure_rate_cap: float = 200.0
    uniform_ratio: float = 0.1
    pre_failure_window_s: float = 4.0
    # EMA weight of one iteration's failure counts (BeyondMimic: 0.001 per step ~ 0.02 per iteration).
    rate_smoothing: float = 0.02


@dataclass
class CommandsConfig:
    motion: MotionCommandConfig = field(default_factory=MotionCommandConfig)


@dataclass
class EnvConfig:
    num_envs: int = 64
    episode_length_s: float = 10.0
    # Policy actions are clipped to +-action_clip before they become joint targets (a diverging
    # policy then gives large, finite penalties instead of inf rewards); 100 as in legged_gym/Isaac Lab.
    action_clip: float = 100.0
    # torch.compile a step's terminations and rewards (observation terms stay eager): measured at
    # N=64 on CPU 1.5 -> 0.33 ms per step; the first env of a process compiles for ~15 s.
    compile: bool = False
    observations: ObservationsConfig = field(default_factory=ObservationsConfig)
    rewards: dict[str, RewardTermConfig] = field(default_factory=dict)
    terminations: dict[str, TerminationTermConfig] = field(default_factory=dict)
    eval_terminations: dict[str, TerminationTermConfig] = field(default_factory=dict)
    events: EventsConfig = field(default_factory=EventsConfig)
    commands: CommandsConfig = field(default_factory=CommandsConfig)


@dataclass
class MLPConfig:
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    activation: str = "silu"


@dataclass
class DecodersConfig:
    g1_dyn: MLPConfig = field(default_factory=MLPConfig)
    g1_kin: MLPConfig = field(default_factory=MLPConfig)


@dataclass
class QuantizerConfig:
    # FSQ: levels per latent dimension; len(levels) dims per token, num_tokens tokens.
    levels: list[int] = field(default_factory=lambda: [8] * 8)
    num_tokens: int = 1
    # tanh (gear_sonic's vector-quantize-pytorch FSQ) | clamp (straight through the clamp; see models/fsq.py)
    bound: str = "tanh"


@dataclass
class UniversalTokenConfig:
    residual_mode: str = "none"  # none | post_quant | pre_quant | replace


@dataclass
class ActorCriticConfig:
    encoders: dict[str, MLPConfig] = field(default_factory=dict)
    decoders: DecodersConfig = field(default_factory=DecodersConfig)
    critic: MLPConfig = field(default_factory=MLPConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    universal_token: UniversalTokenConfig = field(default_factory=UniversalTokenConfig)
    init_noise_std: float = 0.05
    min_std: float = 0.001
    max_std: float = 0.5
    # Running mean/std normalisation of the actor's inputs (proprioception, tokenizer groups).
    obs_normalization: bool = False


@dataclass
class AuxLossesConfig:
    g1_recon: float = 0.01
    g1_smpl_align: float = 1.0
    g1_teleop_align: float = 1.0
    teleop_smpl_align: float = 1.0
    smpl_reencode_g1: float = 1.0


@dataclass
class AlgoConfig:
    num_steps_per_env: int = 24
    num_learning_epochs: int = 5
    num_mini_batches: int = 4
    clip_param: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95
    entropy_coef: float = 0.01
    value_loss_coef: float = 1.0
    use_clipped_value_loss: bool = True
    schedule: str = "adaptive"  # adaptive | fixed
    desired_kl: float = 0.01
    actor_lr: float = 2e-5
    critic_lr: float = 1e-3
    lr_min: float = 1e-5
    lr_max: float = 2e-4
    max_grad_norm: float = 0.1
    normalize_advantage: bool = True
    max_iterations: int = 100
    save_interval: int = 500


@dataclass
class RayConfig:
    # None: start a local Ray (or join RAY_ADDRESS when set); "auto": join the running cluster.
    address: str | None = None
    num_env_runners: int = 1
    num_learners: int = 0  # 0: the learner runs in the driver process
    cpus_per_env_runner: float = 1.0
    gpus_per_env_runner: float = 0.0
    cpus_per_learner: float = 1.0
    gpus_per_learner: float = 0.0
    # torch threads of each learner (0: one per CPU it asks for). A local learner (num_learners=0)
    # asks Ray for nothing: the driver's process runs it while the runners wait for the next
    # sample request, so it may use their cores (the demo's 2 threads: ~1.4x faster updates).
    learner_threads: int = 0
    # Extra Ray resources each env runner / learner requests, to pin a role to the node group that
    # advertises them (deploy/ray/kuberay: CPU simulation nodes advertise `sonic_sim`).
    custom_resources_per_env_runner: dict[str, float] = field(default_factory=dict)
    custom_resources_per_learner: dict[str, float] = field(default_factory=dict)
    include_dashboard: bool = False
    # What a runner ships per step (ppo/compact.py): "compact" (the newest proprioceptive frame, the
    # critic's privileged extras, clip/frame and the robot anchor; the learner rebuilds histories and
    # reference features from its motion table) or "full" (one float32 copy of every group).
    rollout_format: str = "compact"
    # Observation groups whose shipped terms travel as float16 offsets from the rollout's mean.
    rollout_float16: list[str] = field(default_factory=lambda: ["critic"])
    # Each learner takes the whole rollouts of the runners on its own node (env_runners/routing.py),
    # so bulk data stays in the node's object store; false: every rollout is split across learners.
    colocate: bool = True


@dataclass
class CallbacksConfig:
    checkpoint_keep: int = 5  # keep the newest K checkpoints (0 keeps all)
    plot_learning_curves: bool = True
    # Evaluation (sonic_ray.eval): every eval_interval iterations during training (0: never) as Ray
    # tasks that do not block training; `sonic-ray eval` / `monitor` use the other keys as defaults.
    eval_interval: int = 0
    eval_encoders: list[str] = field(default_factory=lambda: ["g1"])
    # Also evaluate the blind control (g1 observations, the token zeroed: the action decoder on
    # proprioception alone): eval/blind/* and eval/token_gain_completed (what the token adds).
    eval_blind: bool = True
    eval_num_envs: int = 64  # envs per evaluation task
    eval_clips_per_task: int = 256  # fan out into one Ray task per this many clips ...
    eval_max_tasks: int = 8  # ... but at most this many tasks
    eval_cpus_per_task: float = 1.0
    eval_max_clips: int = 0  # evaluate the first N clips of the store (0: all)
    eval_render: int = 0  # videos of the K worst clips (during training; the CLIs take --render)


@dataclass
class LoggingConfig:
    wandb_mode: str = "offline"  # offline | online | disabled
    wandb_project: str = "sonic-ray"
    wandb_entity: str | None = None
    progress: bool = True


@dataclass
class TuneConfig:
    """`sonic-ray tune`: what to sweep and how to stop trials early (ignored by `train`).

    `search_space` maps a dotted config key to how it is swept; each trial is the composed config
    with those keys replaced. A spec is one of:
      {grid: [v1, v2, ...]}        every value, one trial each (grids multiply)
      {choice: [v1, v2, ...]}      one value drawn per trial
      {uniform: [lo, hi]}, {loguniform: [lo, hi]}, {randint: [lo, hi]} (hi exclusive)
      {fsq: {levels_per_dim: [L, ...], num_dims: [D, ...]}}  (for actor_critic.quantizer.levels:
                                   the grid of every [L] * D list)
    """

    search_space: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 1  # repeats of the whole space (random specs draw anew each time)
    # Reported per iteration; ASHA and best.yaml rank on it. eval/success_rate once evaluation runs.
    metric: str = "reward/total"
    mode: str = "max"  # max | min
    scheduler: str = "asha"  # asha (early stopping) | fifo (every trial runs to the end)
    grace_period: int = 1  # ASHA: iterations before a trial can be stopped
    reduction_factor: int = 2  # ASHA: keep the best 1/reduction_factor at each rung
    max_concurrent_trials: int = 1
    seed: int | None = None  # seed of random specs (None: fresh draws)


@dataclass
class SonicConfig:
    experiment: str = "default"
    seed: int = 0
    device: str = "cpu"
    run_dir: str | None = None
    resume: str | None = None
    robot: RobotConfig = field(default_factory=RobotConfig)
    motions: MotionsConfig = field(default_factory=MotionsConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    aux_losses: AuxLossesConfig = field(default_factory=AuxLossesConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
