"""Observation dict keys shared by the env, the model, the rollout arrays and the RLlib layer."""

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
