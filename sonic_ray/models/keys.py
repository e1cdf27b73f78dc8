"""Every named key of the pipeline, in one place: observation groups (env -> model), the rollout
arrays a runner ships (runner -> learner), the flat training batch (learner -> loss) and the
forward_train output (RLlib module -> loss)."""

# ---- observation groups (TrackingEnv's obs dict, ActorCritic's input) ---------------------
POLICY = "policy"  # (N, P) proprioception with history
CRITIC = "critic"  # (N, C) privileged observations
TOKENIZER_G1 = "tokenizer_g1"  # (N, G) future joint commands + anchor orientation
TOKENIZER_SMPL = "tokenizer_smpl"  # (N, S) future SMPL keypoints + root orientation
TOKENIZER_TELEOP = "tokenizer_teleop"  # (N, V) lower-body command + VR 3-point targets
ENCODER_INDEX = "encoder_index"  # (N,) int64, index into ENCODER_NAMES

# Encoder order: `encoder_index` values index this tuple.
ENCODER_NAMES = ("g1", "teleop", "smpl")
TOKENIZER_KEYS = {"g1": TOKENIZER_G1, "teleop": TOKENIZER_TELEOP, "smpl": TOKENIZER_SMPL}
FLOAT_GROUPS = (POLICY, CRITIC, TOKENIZER_G1, TOKENIZER_SMPL, TOKENIZER_TELEOP)

# ---- rollout arrays (ppo/rollout.FlatBatch.data, time-major (T, N, ...)) --------------------
OBS_PREFIX = "obs/"  # "obs/<group>": (T, N, k) one observation group (encoder_index as int8)
ACTIONS = "actions"  # (T, N, A); the same string as RLlib's Columns.ACTIONS
LOGP = "logp"  # (T, N)
ACTION_MEAN = "action_mean"  # (T, N, A)
ACTION_STD = "action_std"  # (A,)
REWARDS = "rewards"  # (T, N)
TERMINATED = "terminated"  # (T, N) bool
TRUNCATED = "truncated"  # (T, N) bool
LAST_CRITIC_OBS = "last_critic_obs"  # (N, C) critic obs after the final step
FINAL_CRITIC_OBS = "final_critic_obs"  # (K, C) critic obs of truncated episodes before autoreset
FINAL_INDEX = "final_index"  # (K,) int64, t * N + n of each truncation

# ---- flat training batch (ppo/batch.training_tensors, rows = T*N) ---------------------------
OBS = "obs"  # a minibatch's observation groups as {group: (M, k)}
ADVANTAGES = "advantages"
RETURNS = "returns"
VALUES = "values"

# ---- RLlib module output -------------------------------------------------------------------
FWD_EVAL = "sonic_eval"  # forward_train output key holding ActorCritic.evaluate's Evaluation
